//! Test-support modules shared by the integration tests (`mod common;`).
#![allow(dead_code)]

pub mod reference;
