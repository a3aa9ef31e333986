//! The task engine: map side (sort buffer, background spills, combine, run merge) and reduce
//! side (shuffle buffer, multi-pass k-way merge, grouping into the reducer).

pub mod context;
pub mod error;
pub mod grouping;
pub mod key_order;
pub mod map_task;
pub mod merge;
pub mod reduce_task;
pub mod run_file;
pub mod segment;
pub mod settings;
pub mod sort_buffer;
pub mod spill;

pub use context::TaskServices;
pub use error::{EngineError, EngineResult};
pub use map_task::{index_path, run_map_only_task, run_map_task, MapOutput, MapTaskSpec};
pub use reduce_task::{run_reduce_task, ReduceTaskSpec, ShuffleBuffer};
pub use settings::TaskSettings;
