//! The values of Redox's Platform API that are one of a fixed set, as types: a destination's
//! data format and verification method, a log's status and type, an attempt's outcome.
//!
//! Each is spelled exactly as Redox's Platform API reference spells it (that is what its
//! serde name, [`as_str`](LogStatus::as_str) and `FromStr` use), so the engine parses a string
//! once at its edge (a request, a form, a database row) and never compares strings inside.

use serde::{Deserialize, Serialize};

/// Defines a closed set of API values: the enum, its one spelling, `FromStr` (the error lists
/// the accepted spellings), `Display`, and serde by that spelling.
macro_rules! api_values {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the reference's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling Redox's Platform API uses.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The accepted spellings, for error messages.
            pub fn spellings() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownValue {
                        what: $what,
                        value: s.to_owned(),
                        expected: Self::spellings(),
                    })
            }
        }
    };
}

/// A string that is none of a set's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not one of {expected}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

api_values! {
    /// The format a destination receives data in.
    DataFormat, "data format" {
        Json = "JSON",
        Fhir = "FHIR",
        Hl7v2 = "HL7v2",
        Xml = "XML",
    }
}

api_values! {
    /// How Verify and Save sends its challenge (docs/PROTOCOL.md section 2).
    VerificationMethod, "verification method" {
        Post = "POST",
        Get = "GET",
    }
}

api_values! {
    /// Where a log stands. Redox's v1 Platform API writes these in lower case.
    LogStatus, "log status" {
        /// Queued, or being retried.
        Pending = "pending",
        /// The destination accepted it.
        Succeeded = "succeeded",
        /// Given up on: an operator stopped it, or a query failed.
        Failed = "failed",
        /// Blocked by its subscription's filter: kept, never delivered.
        Filtered = "filtered",
    }
}

api_values! {
    /// What a log records: an asynchronous message sent to a destination, or a synchronous
    /// query relayed to one. Lower case, as Redox's log search takes it (`type: "request"`).
    LogType, "log type" {
        Send = "send",
        Receive = "receive",
        Request = "request",
        Respond = "respond",
        Unknown = "unknown",
    }
}

api_values! {
    /// What a subscription's filter does (Redox's v0 filters): `send` delivers a message only
    /// when every rule holds; `block-all` delivers none.
    FilterAction, "filter action" {
        Send = "send",
        BlockAll = "block-all",
    }
}

api_values! {
    /// Whether a subscription's messages flow or are held in order (Wharf's
    /// `PATCH /v1/subscriptions/{id}`; Redox's dashboard shows Active / Paused).
    SubscriptionStatus, "subscription status" {
        Active = "active",
        Paused = "paused",
    }
}

api_values! {
    /// How one delivery attempt ended.
    AttemptStatus, "attempt status" {
        /// The destination answered 2xx.
        Succeeded = "succeeded",
        /// Anything else: an error status, a timeout, a transport error.
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_their_one_spelling() {
        for status in LogStatus::ALL {
            assert_eq!(status.as_str().parse::<LogStatus>(), Ok(*status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::String(status.as_str().into())
            );
        }
        assert_eq!("request".parse::<LogType>(), Ok(LogType::Request));
        assert_eq!("HL7v2".parse::<DataFormat>(), Ok(DataFormat::Hl7v2));
    }

    #[test]
    fn other_spellings_are_refused_with_the_accepted_ones() {
        let e = "SUCCEEDED".parse::<LogStatus>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "log status \"SUCCEEDED\" is not one of pending, succeeded, failed, filtered"
        );
        assert!("post".parse::<VerificationMethod>().is_err());
    }
}
