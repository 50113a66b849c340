//! The coordinator's status page over HTTP (`--http ADDR`), with axum, which shares hyper with
//! tonic. It reads the coordinator's state as `quern status` does, and changes nothing.
//!
//! - [`view`]: what the page shows, as data.
//! - [`pages`]: `/` (jobs and workers) and `/jobs/JOB_ID`, as HTML; [`timeline`]: the SVG.
//! - [`api`]: `/api/jobs`, `/api/jobs/JOB_ID`, `/api/workers`, as JSON.
//! - [`metrics`]: `/metrics`, for Prometheus.
//! - [`auth`]: with a cluster token, a bearer token or a session cookie from a one-time code.
//! - [`tls`]: serving it over TLS (`--tls-cert`), so that the token never crosses in clear.

pub mod api;
pub mod auth;
pub mod metrics;
pub mod pages;
pub mod timeline;
pub mod tls;
pub mod view;

use crate::service::CoordinatorService;
use auth::{Access, NoRandomness};
use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use quern_proto::auth::Token;
use quern_proto::ids::JobId;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Why the status page cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {address} for the status page: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    NoRandomness(#[from] NoRandomness),
}

/// The status page, bound and ready to serve once the coordinator runs.
pub struct StatusPage {
    listener: TcpListener,
    address: SocketAddr,
    access: Arc<Access>,
    tls: Option<tls::Acceptor>,
}

impl StatusPage {
    /// Listens on `address`. With `token`, the page needs a login; with `tls` (a certificate
    /// and key, PEM), it is served over TLS.
    pub async fn bind(
        address: SocketAddr,
        token: Option<Token>,
        tls: Option<(PathBuf, PathBuf)>,
    ) -> Result<StatusPage, HttpError> {
        let tls = match tls {
            Some((cert, key)) => Some(tls::Acceptor::load(&cert, &key)?),
            None => None,
        };
        let access = Arc::new(Access::new(token, tls.is_some())?);
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| HttpError::Bind { address, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { address, source })?;
        Ok(StatusPage {
            listener,
            address,
            access,
            tls,
        })
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/", self.address)
    }

    /// The one-time login URL, if the page needs a login.
    pub fn login_url(&self) -> Option<String> {
        let code = self.access.code()?;
        Some(format!("{}login?code={code}", self.url()))
    }

    /// Serves the page over `service`'s state until `stop` completes.
    pub async fn serve(
        self,
        service: CoordinatorService,
        stop: impl Future<Output = ()> + Send + 'static,
    ) {
        let app = App {
            service,
            access: self.access,
        };
        let router = router(app);
        let result = match self.tls {
            Some(acceptor) => {
                tls::serve(self.listener, acceptor, router, stop).await;
                Ok(())
            }
            None => {
                axum::serve(self.listener, router)
                    .with_graceful_shutdown(stop)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "the status page stopped");
        }
    }
}

/// What every handler reads.
#[derive(Clone)]
pub struct App {
    service: CoordinatorService,
    access: Arc<Access>,
}

impl App {
    /// Job `id` in full, if the coordinator has it.
    fn job(&self, id: &str) -> Option<view::JobDetail> {
        let id: JobId = id.parse().ok()?;
        view::job(&self.service.lock(), id)
    }
}

fn router(app: App) -> Router {
    let guarded = Router::new()
        .route("/", get(index))
        .route("/jobs/{id}", get(job_page))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/workers", get(api::workers))
        .route("/metrics", get(prometheus))
        .layer(middleware::from_fn_with_state(app.clone(), require_login));
    Router::new()
        .route("/login", get(login_with_code).post(login_with_token))
        .merge(guarded)
        .with_state(app)
}

/// Lets a request through if it may see the page; otherwise a page asks a browser to log in,
/// and a script gets 401.
async fn require_login(State(app): State<App>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if app
        .access
        .admits(text(header::AUTHORIZATION), text(header::COOKIE))
    {
        return next.run(request).await;
    }
    let path = request.uri().path();
    if path.starts_with("/api/") || path == "/metrics" {
        let mut refused = (
            StatusCode::UNAUTHORIZED,
            "this page requires the cluster token: Authorization: Bearer TOKEN\n",
        )
            .into_response();
        refused.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("a valid header value"),
        );
        return refused;
    }
    (StatusCode::UNAUTHORIZED, Html(pages::login(None))).into_response()
}

async fn index(State(app): State<App>) -> Html<String> {
    let (jobs, workers) = {
        let state = app.service.lock();
        (view::jobs(&state), view::workers(&state))
    };
    Html(pages::index(&jobs, &workers))
}

async fn job_page(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.job(&id) {
        Some(detail) => Html(pages::job(&detail)).into_response(),
        None => (StatusCode::NOT_FOUND, Html(pages::no_such_job(&id))).into_response(),
    }
}

async fn prometheus(State(app): State<App>) -> Response {
    let (counts, levels) = metrics::snapshot(&app.service.lock());
    match metrics::render(&counts, &levels) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct CodeQuery {
    code: Option<String>,
}

/// `/login?code=…`: the one-time code gives a session, once.
async fn login_with_code(State(app): State<App>, Query(query): Query<CodeQuery>) -> Response {
    match query.code {
        Some(code) if app.access.take_code(&code) => logged_in(&app.access),
        Some(_) => refused_login("this login code is not valid, or was used already"),
        None => refused_login(""),
    }
}

#[derive(serde::Deserialize)]
struct TokenForm {
    token: String,
}

/// The login form: the cluster token gives a session.
async fn login_with_token(State(app): State<App>, Form(form): Form<TokenForm>) -> Response {
    if app.access.token_matches(&form.token) {
        logged_in(&app.access)
    } else {
        refused_login("that is not the cluster token")
    }
}

/// A new session's cookie, and on to `/`.
fn logged_in(access: &Access) -> Response {
    match access.open_session() {
        Ok(cookie) => {
            let mut headers = HeaderMap::new();
            if let Ok(value) = cookie.parse() {
                headers.insert(header::SET_COOKIE, value);
            }
            (headers, Redirect::to("/")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn refused_login(problem: &str) -> Response {
    let problem = (!problem.is_empty()).then_some(problem);
    (StatusCode::UNAUTHORIZED, Html(pages::login(problem))).into_response()
}
