//! Helpers shared by the store's test binaries.

use wharf_store::engine::{LogRecord, LogStatus, LogType};

/// A log queued for `destination`, ready to enqueue.
pub fn queued(id: &str, destination: &str) -> LogRecord {
    LogRecord {
        seq: 0,
        subscription_id: None,
        log_type: LogType::Send,
        id: id.into(),
        organization_id: "o".into(),
        destination_id: destination.into(),
        source: "s".into(),
        data_model: None,
        event_type: None,
        content_type: "application/json".into(),
        body: b"{}".to_vec(),
        status: LogStatus::Pending,
        attempts: 0,
        next_attempt_at: 0,
        created_at: 1,
        updated_at: 1,
    }
}
