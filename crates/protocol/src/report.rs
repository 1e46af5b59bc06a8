//! How an error is said to a person: the error and its causes on one line. Lives in the crate
//! every other crate depends on, so the store, delivery and both servers say errors alike.

/// An error and its causes on one line (`a: b: c`), each cause once: libraries keep the part a
/// user can act on in the source chain (reqwest says "error sending request" and its cause
/// "connection refused"; tokio-postgres keeps the refused certificate there).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn causes_are_joined_and_a_repeated_one_is_said_once() {
        let e = Layer(
            "error sending request: refused",
            Some(Box::new(Layer(
                "refused",
                Some(Box::new(Layer("os error 111", None))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "error sending request: refused: os error 111"
        );
    }
}
