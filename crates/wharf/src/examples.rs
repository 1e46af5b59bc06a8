//! The example messages, carried inside the binary so that `wharf send --example NAME` works
//! from any directory and from an installed binary; `wharf examples` lists them or writes
//! them out. The files in the repository's `examples/` folder are the source: they are
//! compiled in, so the two never differ.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One bundled example message.
pub struct Example {
    /// The short name `--example` takes.
    pub name: &'static str,
    /// The file name it is written out as (the repository's `examples/` file).
    pub file: &'static str,
    /// What it is, for `wharf examples`.
    pub about: &'static str,
    pub body: &'static str,
}

/// Every bundled example. The first three are asynchronous and are what `wharf up`'s printed
/// command sends; `query` is synchronous and needs a destination that answers queries.
pub const EXAMPLES: &[Example] = &[
    Example {
        name: "adt",
        file: "patient-admin-arrival.json",
        about: "PatientAdmin Arrival (a data model message)",
        body: include_str!("../../../examples/patient-admin-arrival.json"),
    },
    Example {
        name: "scheduling",
        file: "scheduling-new.json",
        about: "Scheduling New (a data model message)",
        body: include_str!("../../../examples/scheduling-new.json"),
    },
    Example {
        name: "fhir",
        file: "fhir-patient-admin.json",
        about: "a FHIR R4 message bundle (application/fhir+json)",
        body: include_str!("../../../examples/fhir-patient-admin.json"),
    },
    Example {
        name: "query",
        file: "patient-query.json",
        about: "Clinical Summary PatientQuery (synchronous: answered by the application's query_url)",
        body: include_str!("../../../examples/patient-query.json"),
    },
];

/// The names `wharf up` prints: the asynchronous examples, in the order they are sent.
pub const ASYNC_NAMES: &str = "adt,scheduling,fhir";

/// The example called `name` (its short name, or its file name with or without `.json`).
pub fn find(name: &str) -> Option<&'static Example> {
    EXAMPLES
        .iter()
        .find(|e| e.name == name || e.file == name || e.file.strip_suffix(".json") == Some(name))
}

/// A name `--example` does not know, said with the names it does.
#[derive(Debug, thiserror::Error)]
#[error(
    "no example called {name:?}: choose from {}, or see `wharf examples`",
    names()
)]
pub struct UnknownExample {
    pub name: String,
}

fn names() -> String {
    EXAMPLES
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--example` values as parsed by clap: each must name an example.
pub fn parse(name: &str) -> Result<&'static Example, UnknownExample> {
    find(name).ok_or_else(|| UnknownExample {
        name: name.to_owned(),
    })
}

#[derive(clap::Args)]
pub struct ExamplesArgs {
    /// Write every example into this directory (created if missing) instead of listing them.
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
}

/// `wharf examples`: the list, or the files written out.
pub fn run(args: &ExamplesArgs) -> ExitCode {
    match &args.write {
        None => {
            for e in EXAMPLES {
                println!("{:<11} {:<27} {}", e.name, e.file, e.about);
            }
            println!();
            println!(
                "Send one with `wharf send ... --example NAME` (several: --example adt,fhir)."
            );
            ExitCode::SUCCESS
        }
        Some(dir) => match write_all(dir) {
            Ok(paths) => {
                for p in paths {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Why the examples could not be written out.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}; choose a directory you can write to with --write", path.display())]
pub struct WriteError {
    path: PathBuf,
    source: std::io::Error,
}

fn write_all(dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
    std::fs::create_dir_all(dir).map_err(|source| WriteError {
        path: dir.to_owned(),
        source,
    })?;
    EXAMPLES
        .iter()
        .map(|e| {
            let path = dir.join(e.file);
            std::fs::write(&path, e.body).map_err(|source| WriteError {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_json_and_found_by_each_of_its_names() {
        for e in EXAMPLES {
            serde_json::from_str::<serde_json::Value>(e.body).expect(e.file);
            assert_eq!(find(e.name).unwrap().file, e.file);
            assert_eq!(find(e.file).unwrap().file, e.file);
            assert_eq!(find(e.file.trim_end_matches(".json")).unwrap().file, e.file);
        }
        for name in ASYNC_NAMES.split(',') {
            assert!(find(name).is_some(), "{name}");
        }
        let unknown = parse("nope").err().unwrap().to_string();
        assert!(
            unknown.contains("adt, scheduling, fhir, query"),
            "{unknown}"
        );
    }
}
