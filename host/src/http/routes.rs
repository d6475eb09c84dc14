//! The one table of routes. Every route is added here with who may call it and what it does, so
//! the router, the access check and the OpenAPI document are built from the same list and can't
//! disagree.

use super::gate::{gate, Access, Gate};
use crate::service::Service;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;
use std::sync::Arc;

/// One route as the OpenAPI document describes it.
#[derive(Clone, Debug)]
pub struct Operation {
    pub method: Method,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
}

/// Routes sharing one state `S`, and their descriptions.
pub struct Routes<S = ()> {
    router: Router<S>,
    operations: Vec<Operation>,
    service: Arc<Service>,
    tag: &'static str,
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new(service: Arc<Service>, tag: &'static str) -> Self {
        Routes { router: Router::new(), operations: Vec::new(), service, tag }
    }

    pub fn add<H, T>(mut self, method: Method, path: &'static str, access: Access, summary: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or_else(|e| unreachable!("routes use standard methods: {e}"));
        let checked = on(filter, handler).route_layer(axum::middleware::from_fn_with_state(Gate { service: self.service.clone(), access }, gate));
        self.router = self.router.route(path, checked);
        self.operations.push(Operation { method, path, tag: self.tag, summary, access });
        self
    }

    pub fn get<H: Handler<T, S>, T: 'static>(self, path: &'static str, access: Access, summary: &'static str, handler: H) -> Self {
        self.add(Method::GET, path, access, summary, handler)
    }

    pub fn post<H: Handler<T, S>, T: 'static>(self, path: &'static str, access: Access, summary: &'static str, handler: H) -> Self {
        self.add(Method::POST, path, access, summary, handler)
    }

    pub fn put<H: Handler<T, S>, T: 'static>(self, path: &'static str, access: Access, summary: &'static str, handler: H) -> Self {
        self.add(Method::PUT, path, access, summary, handler)
    }

    pub fn delete<H: Handler<T, S>, T: 'static>(self, path: &'static str, access: Access, summary: &'static str, handler: H) -> Self {
        self.add(Method::DELETE, path, access, summary, handler)
    }

    pub fn patch<H: Handler<T, S>, T: 'static>(self, path: &'static str, access: Access, summary: &'static str, handler: H) -> Self {
        self.add(Method::PATCH, path, access, summary, handler)
    }

    pub fn with_state(self, state: S) -> Routes<()> {
        Routes { router: self.router.with_state(state), operations: self.operations, service: self.service, tag: self.tag }
    }
}

impl Routes<()> {
    pub fn merge(mut self, other: Routes<()>) -> Self {
        self.router = self.router.merge(other.router);
        self.operations.extend(other.operations);
        self
    }

    pub fn into_parts(self) -> (Router, Vec<Operation>) {
        (self.router, self.operations)
    }
}
