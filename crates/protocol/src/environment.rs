//! The three environments every organization has, and the rule that ties them to TLS.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a destination sits in the customer's lifecycle. Staging and Production carry real PHI
/// and therefore must be reached over HTTPS (docs/PROTOCOL.md section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Environment {
    Development,
    Staging,
    Production,
}

impl Environment {
    pub const ALL: [Environment; 3] = [
        Environment::Development,
        Environment::Staging,
        Environment::Production,
    ];

    /// Whether traffic for this environment must travel over TLS.
    pub fn requires_tls(self) -> bool {
        !matches!(self, Environment::Development)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "Development",
            Environment::Staging => "Staging",
            Environment::Production => "Production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that names no environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown environment {0:?}: expected Development, Staging or Production")]
pub struct UnknownEnvironment(pub String);

impl FromStr for Environment {
    type Err = UnknownEnvironment;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Environment::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEnvironment(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_development_may_skip_tls() {
        assert!(!Environment::Development.requires_tls());
        assert!(Environment::Staging.requires_tls());
        assert!(Environment::Production.requires_tls());
    }

    #[test]
    fn parses_exact_names_only() {
        assert_eq!(
            "Production".parse::<Environment>(),
            Ok(Environment::Production)
        );
        assert!("production".parse::<Environment>().is_err());
    }
}
