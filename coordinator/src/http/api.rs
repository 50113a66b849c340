//! `/api/…`: the status page's data as JSON, for scripts: `/api/jobs` (newest first),
//! `/api/jobs/JOB_ID` (with counters, spec and every attempt) and `/api/workers`. The same
//! [`super::view`] the pages render, so the two never disagree.

use super::App;
use super::view;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub async fn jobs(State(app): State<App>) -> Response {
    Json(view::jobs(&app.service.lock())).into_response()
}

pub async fn job(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.job(&id) {
        Some(detail) => Json(detail).into_response(),
        None => {
            let error = serde_json::json!({ "error": format!("no job {id} on this coordinator") });
            (StatusCode::NOT_FOUND, Json(error)).into_response()
        }
    }
}

pub async fn workers(State(app): State<App>) -> Response {
    Json(view::workers(&app.service.lock())).into_response()
}
