//! The dashboard's home: traffic at a glance. Per environment and per destination, messages
//! per hour over the last 24 hours or 7 days, succeeded and failed (and the rest: pending or
//! filtered), as bar charts drawn here as inline SVG: no charting library, no script, nothing
//! from another origin (the CSP allows none), and every number also in the bar's `<title>` and
//! in the summary beside the chart. The counts are the core's (`crate::app::traffic`).

use super::session::SignedIn;
use super::{Dash, Failure, Page, render, when};
use crate::app::traffic::{self, HourCount};
use askama::Template;
use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

/// A chart's drawing area, in SVG user units (the page scales it to its width).
const WIDTH: i64 = 720;
const HEIGHT: i64 = 120;

pub(super) fn routes() -> Router<Dash> {
    Router::new()
        .route("/dashboard", get(home))
        .route("/dashboard/", get(home))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WindowForm {
    /// `24h` (the default) or `7d`.
    window: String,
}

/// One hour's bar: its three stacked parts, from the bottom.
struct Bar {
    x: i64,
    width: i64,
    ok_y: i64,
    ok_h: i64,
    failed_y: i64,
    failed_h: i64,
    other_y: i64,
    other_h: i64,
    title: String,
}

struct Chart {
    /// For tests and links: `env-Production` or `dest-<id>`.
    id: String,
    label: String,
    total: i64,
    succeeded: i64,
    failed: i64,
    other: i64,
    peak: i64,
    bars: Vec<Bar>,
}

/// Bars of `hours` scaled so the busiest hour fills the height.
fn chart(id: String, label: String, hours: &[HourCount]) -> Chart {
    let peak = hours.iter().map(HourCount::total).max().unwrap_or(0);
    let slot = WIDTH / hours.len().max(1) as i64;
    let scale = |n: i64| if peak == 0 { 0 } else { n * HEIGHT / peak };
    let bars = hours
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let (ok_h, failed_h, other_h) = (scale(h.succeeded), scale(h.failed), scale(h.other));
            let ok_y = HEIGHT - ok_h;
            let failed_y = ok_y - failed_h;
            Bar {
                x: i as i64 * slot,
                width: (slot - 1).max(1),
                ok_y,
                ok_h,
                failed_y,
                failed_h,
                other_y: failed_y - other_h,
                other_h,
                title: format!(
                    "{}: {} succeeded, {} failed, {} pending or filtered",
                    when(h.hour),
                    h.succeeded,
                    h.failed,
                    h.other
                ),
            }
        })
        .collect();
    Chart {
        id,
        label,
        total: hours.iter().map(HourCount::total).sum(),
        succeeded: hours.iter().map(|h| h.succeeded).sum(),
        failed: hours.iter().map(|h| h.failed).sum(),
        other: hours.iter().map(|h| h.other).sum(),
        peak,
        bars,
    }
}

struct EnvironmentCharts {
    flag: String,
    /// The environment's overall chart first, then one per destination.
    charts: Vec<Chart>,
}

#[derive(Template)]
#[template(path = "traffic.html")]
struct TrafficPage {
    page: Page,
    week: bool,
    width: i64,
    height: i64,
    environments: Vec<EnvironmentCharts>,
}

async fn home(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Query(form): Query<WindowForm>,
) -> Result<Response, Failure> {
    let week = form.window == "7d";
    let hours = if week { 7 * 24 } else { 24 };
    let environments = traffic::traffic(&dash, hours)
        .await?
        .into_iter()
        .filter(|e| dash.config.enabled_environments.contains(&e.flag))
        .map(|e| EnvironmentCharts {
            flag: e.flag.to_string(),
            charts: std::iter::once(chart(
                format!("env-{}", e.flag),
                format!("{} (all destinations)", e.flag),
                &e.hours,
            ))
            .chain(
                e.destinations
                    .iter()
                    .map(|d| chart(format!("dest-{}", d.id), d.name.clone(), &d.hours)),
            )
            .collect(),
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &TrafficPage {
            page: Page::new(&dash, &signed_in, "traffic"),
            week,
            width: WIDTH,
            height: HEIGHT,
            environments,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_and_scale_to_the_busiest_hour() {
        let hours = [
            HourCount {
                hour: 0,
                succeeded: 3,
                failed: 1,
                other: 0,
            },
            HourCount {
                hour: 3_600_000,
                ..Default::default()
            },
        ];
        let c = chart("x".into(), "X".into(), &hours);
        assert_eq!((c.total, c.succeeded, c.failed, c.peak), (4, 3, 1, 4));
        let busiest = &c.bars[0];
        assert_eq!(busiest.ok_h + busiest.failed_h, HEIGHT);
        assert_eq!(busiest.failed_y + busiest.failed_h, busiest.ok_y);
        assert_eq!(c.bars[1].ok_h + c.bars[1].failed_h, 0);
        assert_eq!(c.bars[1].x, WIDTH / 2);
        assert!(
            busiest.title.contains("3 succeeded, 1 failed"),
            "{}",
            busiest.title
        );
        let quiet = chart("y".into(), "Y".into(), &hours[1..]);
        assert_eq!(quiet.bars[0].ok_h, 0, "no division by zero");
    }
}
