//! The engine's typed values as database columns: each is kept as text (the spelling the
//! schema has always held) and parsed back when a row is read, on both backends, so the store
//! hands out [`DataFormat`], [`LogStatus`] and the rest, never strings to compare.

use std::error::Error;
use wharf_auth::strategy::Strategy;
use wharf_protocol::Environment;
use wharf_protocol::platform::{DataFormat, FilterAction, LogStatus, LogType, VerificationMethod};

/// A value kept in a text column.
pub(crate) trait Column: Sized + Copy {
    /// The text stored for it.
    fn to_column(self) -> &'static str;
    /// The value a stored text stands for, if any.
    fn from_column(text: &str) -> Option<Self>;
}

impl Column for Environment {
    fn to_column(self) -> &'static str {
        self.as_str()
    }
    fn from_column(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl Column for DataFormat {
    fn to_column(self) -> &'static str {
        self.as_str()
    }
    fn from_column(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl Column for VerificationMethod {
    fn to_column(self) -> &'static str {
        self.as_str()
    }
    fn from_column(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl Column for Strategy {
    fn to_column(self) -> &'static str {
        self.key()
    }
    fn from_column(text: &str) -> Option<Self> {
        Strategy::from_key(text)
    }
}

/// Statuses have been stored in capitals since the first schema (`PENDING`): the queue's
/// indexes and queries name them so.
impl Column for LogStatus {
    fn to_column(self) -> &'static str {
        match self {
            LogStatus::Pending => "PENDING",
            LogStatus::Succeeded => "SUCCEEDED",
            LogStatus::Failed => "FAILED",
            LogStatus::Filtered => "FILTERED",
        }
    }
    fn from_column(text: &str) -> Option<Self> {
        // `HELD`: pending behind a paused subscription. Only the queue's queries tell it from
        // PENDING (they see PENDING alone, so a held log is never sent); to everyone else it
        // is a pending log, as Redox has no other status for it.
        if text == HELD {
            return Some(LogStatus::Pending);
        }
        LogStatus::ALL
            .iter()
            .copied()
            .find(|s| s.to_column() == text)
    }
}

/// The stored status of a log held while its subscription is paused (read as pending).
pub(crate) const HELD: &str = "HELD";

impl Column for FilterAction {
    fn to_column(self) -> &'static str {
        self.as_str()
    }
    fn from_column(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// Types have been stored in capitals since the first schema (`SEND`, `REQUEST`).
impl Column for LogType {
    fn to_column(self) -> &'static str {
        match self {
            LogType::Send => "SEND",
            LogType::Receive => "RECEIVE",
            LogType::Request => "REQUEST",
            LogType::Respond => "RESPOND",
            LogType::Unknown => "UNKNOWN",
        }
    }
    fn from_column(text: &str) -> Option<Self> {
        LogType::ALL.iter().copied().find(|t| t.to_column() == text)
    }
}

/// A typed value read from a text column.
pub(crate) struct Col<T>(pub T);

#[derive(Debug, thiserror::Error)]
#[error("the database holds {0:?}, which this binary does not know")]
struct UnknownText(String);

impl<T: Column> rusqlite::types::FromSql for Col<T> {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        T::from_column(text)
            .map(Col)
            .ok_or_else(|| rusqlite::types::FromSqlError::Other(Box::new(UnknownText(text.into()))))
    }
}

impl<'a, T: Column> tokio_postgres::types::FromSql<'a> for Col<T> {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let text = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
        T::from_column(text)
            .map(Col)
            .ok_or_else(|| Box::new(UnknownText(text.into())) as Box<dyn Error + Sync + Send>)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::FromSql>::accepts(ty)
    }
}
