//! AI suggestions (issue 23): a second reader of every incident filed, which suggests and never
//! decides. Off unless `[ai]` is configured.
//!
//! - [`suggestion`]: what may be suggested, the bounded JSON schema and the checks on an answer (pure).
//! - [`model`]: the one call to the model through rig-core, bounded in time and tokens.
//! - [`worker`]: the task of `haven run` that works the queue filing fills.
//!
//! The suggestion never changes routing: the rules' alerts, priority and deadlines are decided
//! at filing, before the model is asked.

pub mod model;
pub mod suggestion;
pub mod worker;

pub use model::{AiError, Reader};
pub use suggestion::{Risk, Suggestion};
