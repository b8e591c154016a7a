//! openraft's storage conformance suite against the redb log store and state machine.

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

use super::NodeId;
use super::TypeConfig;
use super::log_store::LogStore;
use crate::lease::Leases;
use crate::mvcc::Store;
use crate::state_machine::StateMachine;
use crate::watch::WatchHub;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::new());
        let sm = StateMachine::new(
            store,
            Arc::new(WatchHub::new(0)),
            Arc::new(Leases::new()),
            &dir.path().join("snapshot"),
        )
        .expect("state machine");
        let log = LogStore::open(&dir.path().join("raft-log.redb"))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}
