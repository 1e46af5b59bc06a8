//! The Platform API's request and response bodies, in the shapes of Redox's Platform API
//! reference (Destinations, Environments, Auth credentials, Logs), field for field. The
//! OpenAPI document (`/platform/v1/openapi.json`) is generated from these same types, so it
//! cannot drift from what the handlers send.
//!
//! Where Redox's reference stops, Wharf adds fields (marked "Wharf" in their docs), never
//! renames Redox's: a destination's `dataFormat`, `verificationMethod`, `verified`,
//! `verifiedAt`, `hasVerificationToken`, `createdAt` and `updatedAt`; a log's `nextAttemptAt`
//! and `attemptList`. Redox's organization ids are numbers; Wharf's are UUIDs (strings).

use crate::app::queues::PausedBy;
use crate::app::rfc3339_text;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use wharf_protocol::Environment;
use wharf_protocol::platform::{
    AttemptStatus, DataFormat, LogStatus, LogType, UnknownValue, VerificationMethod,
};
use wharf_store::engine::{
    AttemptRecord, AuthCredentialRecord, DestinationRecord, EnvironmentRecord, LogRecord,
    Organization, QueueState,
};

/// The Platform API version this engine speaks.
pub const API_VERSION: &str = "1.0.0";

/// Every answer's `meta`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    /// Always `1.0.0`.
    #[schema(example = "1.0.0")]
    pub version: &'static str,
    /// Paged listings only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<PageMeta>,
}

impl Meta {
    pub fn new() -> Meta {
        Meta {
            version: API_VERSION,
            page: None,
        }
    }
}

/// Redox's envelope: `{"meta": {...}, "payload": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub meta: Meta,
    pub payload: T,
}

/// An error answer: `{"meta": {...}, "errors": [{"message": "..."}]}` (Wharf's shape: Redox
/// documents no Platform API error body).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub meta: Meta,
    pub errors: Vec<ErrorItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorItem {
    /// What went wrong and what to do about it.
    pub message: String,
}

/// `meta.page` of a paged listing: offset paging, as Redox's listings (`currentPage`,
/// `links`), or cursor paging, as its log searches (`cursor`: pass it back as `_cursor` for
/// the next page; absent on the last page; Wharf's place for it, UNCONFIRMED in Redox's docs).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    /// 1 for the first page (offset paging).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_page: Option<usize>,
    /// `offset` or `cursor`.
    #[schema(example = "offset")]
    pub page_type: &'static str,
    pub page_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<PageLinks>,
    /// The next page's `_cursor` (cursor paging); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl PageMeta {
    /// The meta of `page` of an offset-paged listing; `link(n)` is page `n`'s relative link.
    pub fn offset(
        page: crate::app::logs::Page,
        has_next: bool,
        link: impl Fn(usize) -> String,
    ) -> Self {
        PageMeta {
            current_page: Some(page.number),
            page_type: "offset",
            page_size: page.size,
            links: Some(PageLinks {
                this: link(page.number),
                next: has_next.then(|| link(page.number + 1)),
                first: link(1),
            }),
            cursor: None,
        }
    }

    /// The meta of a cursor-paged search: `cursor` fetches the next page.
    pub fn cursor(page_size: usize, cursor: Option<String>) -> Self {
        PageMeta {
            current_page: None,
            page_type: "cursor",
            page_size,
            links: None,
            cursor,
        }
    }
}

/// Relative links, as Redox writes them (`/organizations/{id}/logs?_page=2&_count=50`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PageLinks {
    #[serde(rename = "self")]
    pub this: String,
    /// Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub first: String,
}

// ---- organizations and environments ----

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationView {
    pub id: String,
    pub name: String,
    /// Wharf: who hears of queues pausing and recovering.
    pub alert_email: Option<String>,
}

impl From<&Organization> for OrganizationView {
    fn from(o: &Organization) -> Self {
        OrganizationView {
            id: o.id.clone(),
            name: o.name.clone(),
            alert_email: o.alert_email.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationsPayload {
    pub organizations: Vec<OrganizationView>,
}

/// An organization as other objects reference it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationRef {
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentView {
    pub id: String,
    pub name: String,
    pub environment_flag: Environment,
    pub organization: OrganizationRef,
}

impl From<&EnvironmentRecord> for EnvironmentView {
    fn from(e: &EnvironmentRecord) -> Self {
        EnvironmentView {
            id: e.id.clone(),
            name: e.name.clone(),
            environment_flag: e.flag,
            organization: OrganizationRef {
                id: e.organization_id.clone(),
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnvironmentsPayload {
    pub environments: Vec<EnvironmentView>,
}

/// An environment as a destination names it: `{id, environmentFlag}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentRef {
    pub id: Option<String>,
    pub environment_flag: Option<Environment>,
}

// ---- destinations ----

/// A destination as Redox returns it, plus Wharf's fields. Never the verification token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationView {
    pub id: String,
    pub name: String,
    /// The linked auth credential's id, if any.
    pub auth_credential: Option<String>,
    /// The URL the engine POSTs to.
    pub endpoint: Option<String>,
    pub environment: EnvironmentRef,
    /// Redox's wizard state: `null` once set up; the step it resumes at while the dashboard's
    /// wizard is still setting it up.
    pub setup_state: Option<SetupState>,
    /// Wharf.
    pub data_format: DataFormat,
    /// Wharf: how Verify and Save sends its challenge.
    pub verification_method: VerificationMethod,
    /// Wharf: whether a verification token is set (it is never returned).
    pub has_verification_token: bool,
    /// Wharf: whether it passed Verify and Save since its endpoint, token or credential last
    /// changed. Only verified destinations receive data.
    pub verified: bool,
    /// Wharf.
    pub verified_at: Option<String>,
    /// Wharf.
    pub created_at: String,
    /// Wharf.
    pub updated_at: String,
}

/// Where the dashboard's setup wizard stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupState {
    /// The wizard step it resumes at, by Redox's name (e.g. `Verification token`).
    pub step: String,
}

impl DestinationView {
    pub fn new(d: &DestinationRecord, env: &EnvironmentRecord) -> Self {
        DestinationView {
            id: d.id.clone(),
            name: d.name.clone(),
            auth_credential: d.auth_credential.clone(),
            endpoint: d.endpoint.clone(),
            environment: EnvironmentRef {
                id: Some(env.id.clone()),
                environment_flag: Some(env.flag),
            },
            setup_state: d.setup_step.map(|step| SetupState {
                step: crate::app::destinations::SETUP_STEPS[(step.clamp(1, 7) - 1) as usize]
                    .to_owned(),
            }),
            data_format: d.data_format,
            verification_method: d.verification_method,
            has_verification_token: d.verification_token.is_some(),
            verified: d.verified_at.is_some(),
            verified_at: d.verified_at.map(rfc3339_text),
            created_at: rfc3339_text(d.created_at),
            updated_at: rfc3339_text(d.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationsPayload {
    pub destinations: Vec<DestinationView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationPayload {
    pub destination: DestinationView,
}

/// `{"message": "..."}`: what a delete did.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePayload {
    pub message: String,
}

impl MessagePayload {
    /// Redox's answer to a delete: `<What> id [<id>] was successfully deleted.`
    pub fn deleted(what: &str, id: impl std::fmt::Display) -> Self {
        MessagePayload {
            message: format!("{what} id [{id}] was successfully deleted."),
        }
    }
}

/// Reads a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Reads a field that is one of a closed set of values, naming the field and the accepted
/// values when it is none of them (serde's own message names neither the field nor, for a
/// wrapped body, where it was).
fn api_value<'de, D, T>(field: &str, d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = UnknownValue>,
{
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    text.parse().map(Some).map_err(|e: UnknownValue| {
        let accepted = match e.expected.rsplit_once(", ") {
            Some((head, last)) if head.contains(", ") => format!("one of {head} or {last}"),
            Some((head, last)) => format!("{head} or {last}"),
            None => e.expected.clone(),
        };
        D::Error::custom(format!("`{field}` {:?} must be {accepted}", e.value))
    })
}

fn data_format<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DataFormat>, D::Error> {
    api_value("dataFormat", d)
}

fn verification_method<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<VerificationMethod>, D::Error> {
    api_value("verificationMethod", d)
}

/// The body of creating or changing a destination: the destination object as Redox returns
/// it. Its read-only fields (`id`, `environment`) are accepted when they agree with the path
/// and refused when they contradict it; `createdAt`, `updatedAt`, `setupState` and Wharf's
/// read-only fields are ignored. `cloudProviderSettings` (cloud destinations) is refused:
/// Wharf delivers to URL endpoints only. Any other field is refused.
// The ignored read-only fields are declared so that a destination as Redox returns it is
// accepted back, and are never read.
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationBody {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub endpoint: Option<Option<String>>,
    /// Write-only.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub verification_token: Option<Option<String>>,
    /// An auth credential of the same environment, or `null` to unlink.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub auth_credential: Option<Option<String>>,
    /// Wharf; `JSON` when created without it.
    #[serde(default, deserialize_with = "data_format")]
    pub data_format: Option<DataFormat>,
    /// Wharf; `POST` when created without it.
    #[serde(default, deserialize_with = "verification_method")]
    pub verification_method: Option<VerificationMethod>,
    /// Read-only.
    pub id: Option<String>,
    /// Read-only: the environment is the path's (create) or the destination's own.
    pub environment: Option<EnvironmentRef>,
    /// Refused when set: Wharf has no cloud destinations.
    #[schema(value_type = Option<Object>)]
    pub cloud_provider_settings: Option<Value>,
    /// Ignored (read-only).
    #[schema(value_type = Option<Object>)]
    pub setup_state: Option<Value>,
    /// Ignored (read-only).
    pub created_at: Option<String>,
    /// Ignored (read-only).
    pub updated_at: Option<String>,
    /// Ignored (read-only).
    pub verified: Option<bool>,
    /// Ignored (read-only).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub verified_at: Option<Option<String>>,
    /// Ignored (read-only).
    pub has_verification_token: Option<bool>,
}

/// The body of Verify and Save: what to change before the challenge is sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyBody {
    pub endpoint: Option<String>,
    pub verification_token: Option<String>,
    #[serde(default, deserialize_with = "verification_method")]
    pub verification_method: Option<VerificationMethod>,
}

// ---- auth credentials ----

/// A credential as a listing shows it: its metadata only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSummary {
    pub id: String,
    pub name: String,
    /// The organization's id.
    pub organization: String,
    pub environment_id: String,
    #[schema(value_type = String, example = "SMART_Backend")]
    pub auth_strategy: &'static str,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&AuthCredentialRecord> for CredentialSummary {
    fn from(r: &AuthCredentialRecord) -> Self {
        CredentialSummary {
            id: r.id.clone(),
            name: r.name.clone(),
            organization: r.organization_id.clone(),
            environment_id: r.environment_id.clone(),
            auth_strategy: r.strategy.key(),
            created_at: rfc3339_text(r.created_at),
            updated_at: rfc3339_text(r.updated_at),
        }
    }
}

/// One credential: its metadata, its strategy's non-secret fields and `has<Field>` for each
/// secret one (never a secret), and `jwksUrl` where the engine signs with its own key.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    #[serde(flatten)]
    pub summary: CredentialSummary,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialsPayload {
    pub credentials: Vec<CredentialSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialPayload {
    pub credential: CredentialView,
}

/// One strategy's fields, by Redox's names.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StrategyFields {
    pub available_fields: Vec<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StrategiesPayload {
    /// Keyed by strategy (`AwsSigv4`, `GoogleWIF`, `OAuth_2.0_2-legged`, ...).
    pub strategies: std::collections::BTreeMap<&'static str, StrategyFields>,
}

// ---- logs ----

/// A source or destination as a log names it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Party {
    pub id: String,
    pub name: String,
    pub organization: PartyOrganization,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartyOrganization {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Attempts {
    pub total: i64,
    /// The most recent attempt; `null` before the first.
    pub latest: Option<LatestAttempt>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatestAttempt {
    pub id: String,
    pub attempt_at: String,
    pub status: AttemptStatus,
}

/// One attempt in full (Wharf's `attemptList`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub id: String,
    pub attempt_at: String,
    pub status: AttemptStatus,
    pub duration_ms: i64,
    /// The destination's HTTP status, when it answered.
    pub status_code: Option<i64>,
    /// The transport error, when it did not.
    pub error: Option<String>,
    /// The first bytes of its answer.
    pub response: Option<String>,
}

impl From<&AttemptRecord> for AttemptView {
    fn from(a: &AttemptRecord) -> Self {
        AttemptView {
            id: a.id.clone(),
            attempt_at: rfc3339_text(a.started_at),
            status: attempt_status(a),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error.clone(),
            response: a
                .response
                .as_ref()
                .map(|r| String::from_utf8_lossy(r).into_owned()),
        }
    }
}

fn attempt_status(a: &AttemptRecord) -> AttemptStatus {
    if a.error.is_none() && a.status_code.is_some_and(|s| (200..300).contains(&s)) {
        AttemptStatus::Succeeded
    } else {
        AttemptStatus::Failed
    }
}

/// A log as Redox returns it, plus Wharf's `nextAttemptAt` (and `attemptList` when one log is
/// read).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogView {
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    pub data_model: Option<String>,
    pub event_type: Option<String>,
    pub status: LogStatus,
    #[serde(rename = "type")]
    pub log_type: LogType,
    /// Sources are named in the engine's configuration: their id is their name.
    pub source: Party,
    pub destination: Party,
    pub attempts: Attempts,
    /// Wharf: when a pending log is next tried.
    pub next_attempt_at: Option<String>,
    /// Wharf: every attempt, oldest first (reading one log only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_list: Option<Vec<AttemptView>>,
}

impl LogView {
    /// `latest`: the newest attempt, when known; `destination_name`: `None` when the
    /// destination is gone.
    pub fn new(
        l: &LogRecord,
        organization: &Organization,
        destination_name: Option<&str>,
        latest: Option<&AttemptRecord>,
    ) -> Self {
        let party = |id: &str, name: &str| Party {
            id: id.to_owned(),
            name: name.to_owned(),
            organization: PartyOrganization {
                id: organization.id.clone(),
                name: organization.name.clone(),
            },
        };
        LogView {
            id: l.id.clone(),
            created_at: rfc3339_text(l.created_at),
            updated_at: rfc3339_text(l.updated_at),
            data_model: l.data_model.clone(),
            event_type: l.event_type.clone(),
            status: l.status,
            log_type: l.log_type,
            source: party(&l.source, &l.source),
            destination: party(&l.destination_id, destination_name.unwrap_or("")),
            attempts: Attempts {
                total: l.attempts,
                latest: latest.map(|a| LatestAttempt {
                    id: a.id.clone(),
                    attempt_at: rfc3339_text(a.started_at),
                    status: attempt_status(a),
                }),
            },
            next_attempt_at: (l.status == LogStatus::Pending)
                .then(|| rfc3339_text(l.next_attempt_at)),
            attempt_list: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogsPayload {
    /// Newest first.
    pub results: Vec<LogView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogPayload {
    pub result: LogView,
}

/// The filters and paging of a log listing, as query parameters.
#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    pub destination_id: Option<String>,
    /// `succeeded`, `failed`, `filtered` or `pending`.
    pub status: Option<String>,
    /// `send`, `receive`, `request`, `respond` or `unknown`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub log_type: Option<String>,
    pub data_model: Option<String>,
    pub event_type: Option<String>,
    /// ISO 8601; created at or after.
    pub created_after: Option<String>,
    /// ISO 8601; created at or before.
    pub created_before: Option<String>,
    /// ISO 8601; last changed at or after.
    pub updated_after: Option<String>,
    /// ISO 8601; last changed at or before.
    pub updated_before: Option<String>,
    /// Redox's `dataMode` (`realtime` or `backfill`): accepted; Wharf has one mode.
    pub data_mode: Option<String>,
    /// Page number, 1 first.
    #[serde(rename = "_page")]
    #[param(rename = "_page")]
    pub page: Option<usize>,
    /// Logs per page, at most 50 (larger counts are taken as 50); 50 by default.
    #[serde(rename = "_count")]
    #[param(rename = "_count")]
    pub count: Option<usize>,
}

/// One term of a payload search: every word of `value` somewhere in the body, in any order
/// (case-insensitive; "Nila Jonkel" finds a body whose FirstName is Nila and LastName Jonkel). Redox's `category` (e.g. `patient`) is accepted; Wharf searches the
/// whole body whatever it says.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchTerm {
    #[schema(example = "Nila Jonkel")]
    pub value: String,
    #[schema(example = "patient")]
    #[allow(
        dead_code,
        reason = "accepted from Redox's clients; Wharf searches the whole body"
    )]
    pub category: Option<String>,
}

/// The body of a log search: Redox's search-payloads body (`searchTerms` and the metadata
/// filters) or its search-metadata body (the filters alone).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogSearchBody {
    /// Payload search only: every term must be found in the body.
    pub search_terms: Option<Vec<SearchTerm>>,
    /// Redox's facility code: Wharf keeps none, so a search naming one is refused.
    pub facility_code: Option<String>,
    /// `realtime` or `backfill`: accepted; Wharf has one mode.
    pub data_mode: Option<String>,
    /// `AWS_USA_EAST_1`, `AWS_CAN_CENTRAL` or `GCP_USA_CENTRAL_1`: accepted; Wharf is one
    /// region.
    pub service_region: Option<String>,
    pub data_model: Option<String>,
    pub event_type: Option<String>,
    /// ISO 8601; created at or after.
    pub created_after: Option<String>,
    /// ISO 8601; created at or before.
    pub created_before: Option<String>,
    /// ISO 8601; last changed at or after.
    pub updated_after: Option<String>,
    /// ISO 8601; last changed at or before.
    pub updated_before: Option<String>,
    /// The source's id (its name in the engine's configuration).
    pub source_id: Option<String>,
    pub destination_id: Option<String>,
    /// `send`, `receive`, `request`, `respond` or `unknown`.
    #[serde(rename = "type")]
    pub log_type: Option<String>,
    /// `succeeded`, `failed`, `filtered` or `pending`.
    pub status: Option<String>,
}

/// A search's paging, as query parameters.
#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Logs per page, at most 50 (larger counts are taken as 50); 50 by default.
    #[serde(rename = "_count")]
    #[param(rename = "_count")]
    pub count: Option<usize>,
    /// `meta.page.cursor` of the previous answer: the next page.
    #[serde(rename = "_cursor")]
    #[param(rename = "_cursor")]
    pub cursor: Option<String>,
}

/// Wharf's bulk resend: the finished logs created in the range (both ends included), of one
/// destination and one status if given.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResendBody {
    /// ISO 8601; created at or after.
    pub created_after: String,
    /// ISO 8601; created at or before.
    pub created_before: String,
    pub destination_id: Option<String>,
    /// `succeeded`, `failed` or `filtered` (pending logs are queued already).
    pub status: Option<String>,
}

/// How many logs a bulk resend put back in their queues.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResendPayload {
    pub count: u64,
}

// ---- audit (Wharf) ----

/// One audit entry (Wharf): who did what to which log, when, from where.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Append order: larger is later.
    pub seq: i64,
    pub at: String,
    /// `operator` (a dashboard account) or `api_key` (a named management key).
    pub actor_kind: String,
    pub actor_name: String,
    /// `log.phi.read`: a log's body or its attempts' answers were read.
    pub action: String,
    /// The log's id.
    pub subject: String,
    /// The client's address.
    pub address: Option<String>,
}

impl From<&wharf_store::engine::AuditRecord> for AuditEntry {
    fn from(a: &wharf_store::engine::AuditRecord) -> Self {
        AuditEntry {
            seq: a.seq,
            at: rfc3339_text(a.at),
            actor_kind: a.actor_kind.clone(),
            actor_name: a.actor_name.clone(),
            action: a.action.clone(),
            subject: a.subject.clone(),
            address: a.address.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPayload {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

/// The audit export's filter and paging, as query parameters.
#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// ISO 8601; entries at or after this time.
    pub since: Option<String>,
    /// Page number, 1 first.
    #[serde(rename = "_page")]
    #[param(rename = "_page")]
    pub page: Option<usize>,
    /// Entries per page, at most 500 (larger counts are taken as 500); 500 by default.
    #[serde(rename = "_count")]
    #[param(rename = "_count")]
    pub count: Option<usize>,
}

// ---- queues (Wharf) ----

/// A destination's queue (Wharf).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    pub destination_id: String,
    /// `running`, `held` (its head failed and is retried on the ladder; the messages behind
    /// it wait) or `paused` (by an operator), as the dashboard and `/metrics` say.
    pub state: &'static str,
    /// `operator` (paused) or `delivery failing` (held).
    pub reason: Option<&'static str>,
    /// When an operator paused it.
    pub paused_at: Option<String>,
    /// Who paused it (a management key's or an operator's name), and why.
    pub paused_by: Option<String>,
    pub pause_reason: Option<String>,
    /// Pending logs.
    pub depth: i64,
    pub head_log_id: Option<String>,
    pub head_attempts: Option<i64>,
    pub next_attempt_at: Option<String>,
}

impl QueueView {
    pub fn new(id: &str, q: &QueueState, paused: Option<PausedBy>) -> Self {
        QueueView {
            destination_id: id.to_owned(),
            state: crate::app::queues::QueueCondition::of(q).as_str(),
            reason: paused.map(PausedBy::as_str),
            paused_at: q.pause.as_ref().map(|p| rfc3339_text(p.at)),
            paused_by: q.pause.as_ref().and_then(|p| p.by.clone()),
            pause_reason: q.pause.as_ref().and_then(|p| p.reason.clone()),
            depth: q.depth,
            head_log_id: q.head.as_ref().map(|h| h.id.clone()),
            head_attempts: q.head.as_ref().map(|h| h.attempts),
            next_attempt_at: q
                .head
                .as_ref()
                .filter(|_| !q.paused_by_operator)
                .map(|h| rfc3339_text(h.next_attempt_at)),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePayload {
    pub queue: QueueView,
}
