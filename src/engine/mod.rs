//! The engine: the window operator (micro-batch driver over key shards), its outputs and
//! metrics. Only this module touches rayon.

mod keys;
mod operator;
mod shard;

pub use keys::KeySpec;
pub(crate) use keys::{BoundKeys, KeyTable};
pub(crate) use operator::{AggSpec, OperatorScalars, OperatorSnapshot, fold_factory};
pub use operator::{Metrics, WindowOpBuilder, WindowOperator, WindowOut};
pub(crate) use shard::{ClockState, ShardState};
