//! A router that remembers what it routes.
//!
//! Parts add routes through [`Routes`], naming the access each one needs. The table is what the
//! OpenAPI listing is built from and what the router-walk test uses to prove that every route
//! that is not public refuses anonymous and under-privileged callers. Handlers still enforce
//! access through their extractors; the table states the intent so the test can check it.

use axum::Router;
use axum::http::Method;
use axum::routing::MethodRouter;
use serde::Serialize;

use crate::app::AppState;

/// Who may call a route. Roles are ordered: each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// No credentials (health, login, setup, static assets).
    Public,
    /// Authenticated by a project DSN key (Sentry ingest), not by a user.
    DsnKey,
    /// A chat site key (plus a visitor token where a visitor acts): the widget, not a user.
    /// See [`super::public::Widget`].
    Widget,
    /// A secret in the URL (heartbeat pings and pushes). See [`super::public::Token`].
    Token,
    Viewer,
    Agent,
    Admin,
    Owner,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteInfo {
    #[serde(serialize_with = "ser_method")]
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
}

fn ser_method<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

pub struct Routes {
    router: Router<AppState>,
    table: Vec<RouteInfo>,
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

impl Routes {
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Adds one method on one path. `handler` is e.g. `get(list_projects)`, possibly with
    /// layers (a body limit) applied.
    pub fn add(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: MethodRouter<AppState>,
    ) -> Self {
        self.table.push(RouteInfo {
            method,
            path,
            access,
            summary,
        });
        self.router = self.router.route(path, handler);
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<RouteInfo>) {
        (self.router, self.table)
    }
}
