//! The rule set the daemon uses right now. Filing takes the current set once per batch; a
//! reload (SIGHUP) swaps in a new set only after it loaded without errors, so a bad edit never
//! replaces the last good set.

use super::{RuleErrors, RuleSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

#[derive(Debug)]
pub struct LiveRules {
    current: RwLock<Arc<RuleSet>>,
}

impl LiveRules {
    pub fn new(set: RuleSet) -> LiveRules {
        LiveRules { current: RwLock::new(Arc::new(set)) }
    }

    /// The set to use for the next batch; a batch keeps its set even if a reload happens.
    pub fn current(&self) -> Arc<RuleSet> {
        // A poisoned lock still holds a whole Arc: the swap below cannot half-happen.
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Swaps in a set that loaded without errors.
    pub fn replace(&self, set: RuleSet) {
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut g) => *g = set,
            Err(p) => *p.into_inner() = set,
        }
    }

    /// Loads `dir` and swaps it in only if it has no errors; otherwise the current set stays
    /// and the errors say why (for the log and the DSL).
    pub fn reload(&self, dir: &Path) -> Result<(), RuleErrors> {
        let set = RuleSet::load(dir)?;
        self.replace(set);
        Ok(())
    }
}
