//! `GET /config` and `GET /config/section/{section}/option/{option}`: what
//! this process runs with (`settings.rs`), for platform admins (the settings
//! are the platform's), as JSON or, with `Accept: text/plain`, as the text of an
//! `airflow.cfg`. Secrets show as Airflow's `< hidden >`.

use super::super::{ApiError, ApiResult, ApiState};
use super::dag_sources::wants_text;
use super::{V2Path, V2Query};
use crate::settings::{Section, ini};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Airflow's `Config`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Config {
    pub sections: Vec<ConfigSection>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigSection {
    pub name: String,
    pub options: Vec<ConfigOption>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigOption {
    pub key: String,
    pub value: String,
}

impl From<&Section> for ConfigSection {
    fn from(s: &Section) -> Self {
        ConfigSection {
            name: s.name.clone(),
            options: s
                .options
                .iter()
                .map(|(key, value)| ConfigOption {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

/// JSON, or the sections as `airflow.cfg` text.
fn answer(sections: Vec<Section>, headers: &HeaderMap) -> ApiResult<Response> {
    if wants_text(headers)? {
        return Ok(ini(&sections).into_response());
    }
    Ok(Json(Config {
        sections: sections.iter().map(ConfigSection::from).collect(),
    })
    .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfigQuery {
    /// Only this section.
    section: Option<String>,
}

/// Get the configuration this Aileron runs with.
#[utoipa::path(
    get, path = "/config", tag = "Config", operation_id = "get_config",
    params(ConfigQuery),
    responses(
        (status = 200, description = "Every section (or the one asked for), as JSON \
            or, with `Accept: text/plain`, as `airflow.cfg` text.", body = Config),
        (status = 404, description = "No such section."),
        (status = 406, description = "An `Accept` this operation cannot answer."),
    )
)]
pub async fn get_config(
    State(s): State<ApiState>,
    V2Query(q): V2Query<ConfigQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let sections = match &q.section {
        None => s.settings.sections().to_vec(),
        Some(name) => vec![
            s.settings
                .section(name)
                .ok_or_else(|| ApiError::not_found(format!("Section {name} not found.")))?
                .clone(),
        ],
    };
    answer(sections, &headers)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OptionPath {
    section: String,
    option: String,
}

/// Get one option of the configuration.
#[utoipa::path(
    get, path = "/config/section/{section}/option/{option}", tag = "Config",
    operation_id = "get_config_value",
    params(OptionPath),
    responses(
        (status = 200, description = "The option in its section.", body = Config),
        (status = 404, description = "No such section or option."),
        (status = 406, description = "An `Accept` this operation cannot answer."),
    )
)]
pub async fn get_config_value(
    State(s): State<ApiState>,
    V2Path(OptionPath { section, option }): V2Path<OptionPath>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let value = s
        .settings
        .section(&section)
        .and_then(|sec| sec.option(&option))
        .ok_or_else(|| ApiError::not_found(format!("Option [{section}/{option}] not found.")))?;
    answer(
        vec![Section {
            name: section.clone(),
            options: vec![(option.clone(), value.to_owned())],
        }],
        &headers,
    )
}
