//! Traffic at a glance (issue 29): per environment and per destination, the messages of each
//! hour of the last 24 hours or 7 days, split into succeeded, failed and the rest (pending or
//! filtered), counted from the logs by the store (one grouped query, no scan of bodies).

use super::{Engine, EngineError};
use std::collections::HashMap;
use wharf_protocol::Environment;
use wharf_store::engine::LogStatus;

const HOUR: i64 = 3_600_000;

/// One hour's logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourCount {
    /// The hour's start (ms since the epoch).
    pub hour: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// Pending or filtered.
    pub other: i64,
}

impl HourCount {
    pub fn total(&self) -> i64 {
        self.succeeded + self.failed + self.other
    }
}

/// One destination's hours, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationTraffic {
    pub id: String,
    pub name: String,
    pub hours: Vec<HourCount>,
}

/// One environment's hours (all its destinations together) and each destination's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentTraffic {
    pub flag: Environment,
    pub hours: Vec<HourCount>,
    pub destinations: Vec<DestinationTraffic>,
}

/// The last `hours` hours (the current one last), per environment and destination.
pub async fn traffic(
    engine: &Engine,
    hours: usize,
) -> Result<Vec<EnvironmentTraffic>, EngineError> {
    let now = engine.now_millis();
    let last = now.div_euclid(HOUR) * HOUR;
    let first = last - (hours as i64 - 1) * HOUR;
    let org = engine.organization.id.clone();
    let (counts, environments) = engine
        .db(move |s| {
            let counts = s.traffic(&org, first)?;
            let mut environments = Vec::new();
            for env in s.environments(&org)? {
                let destinations = s.destinations(&env.id)?;
                environments.push((env, destinations));
            }
            Ok((counts, environments))
        })
        .await?;
    let empty = || -> Vec<HourCount> {
        (0..hours)
            .map(|i| HourCount {
                hour: first + i as i64 * HOUR,
                ..Default::default()
            })
            .collect()
    };
    let mut by_destination: HashMap<&str, Vec<HourCount>> = HashMap::new();
    for c in &counts {
        let slot = (c.hour - first).div_euclid(HOUR);
        if !(0..hours as i64).contains(&slot) {
            continue;
        }
        let hour = &mut by_destination
            .entry(c.destination_id.as_str())
            .or_insert_with(empty)[slot as usize];
        match c.status {
            LogStatus::Succeeded => hour.succeeded += c.count,
            LogStatus::Failed => hour.failed += c.count,
            LogStatus::Pending | LogStatus::Filtered => hour.other += c.count,
        }
    }
    Ok(environments
        .into_iter()
        .map(|(env, destinations)| {
            let destinations: Vec<DestinationTraffic> = destinations
                .into_iter()
                .map(|d| DestinationTraffic {
                    hours: by_destination
                        .get(d.id.as_str())
                        .cloned()
                        .unwrap_or_else(empty),
                    id: d.id,
                    name: d.name,
                })
                .collect();
            let mut total = empty();
            for d in &destinations {
                for (sum, h) in total.iter_mut().zip(&d.hours) {
                    sum.succeeded += h.succeeded;
                    sum.failed += h.failed;
                    sum.other += h.other;
                }
            }
            EnvironmentTraffic {
                flag: env.flag,
                hours: total,
                destinations,
            }
        })
        .collect())
}
