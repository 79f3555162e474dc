//! Test-support modules shared by the integration tests (`mod common;`).
#![allow(dead_code)]

pub mod reference;

/// `n` with thousands separators, as windrow's summaries print counts (`1,234,567`).
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
