//! The one table of routes. Every route is added here with who may call it, what it takes and what
//! it answers, so the router, the access check and the OpenAPI document are built from the same
//! list and can't disagree. Schemas come from the real request and answer types (`JsonSchema`
//! beside their `Serialize`/`Deserialize`), so the document follows the code.

use super::gate::{gate, Access, Gate};
use crate::service::Service;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use std::sync::Arc;

/// Makes the schema of one type, into a generator that collects the named ones.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

pub fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A body that is one of two shapes (the handler tells them apart by a key, so that an error
/// names the field at fault).
pub struct AnyOf<A, B>(std::marker::PhantomData<(A, B)>);

impl<A: JsonSchema, B: JsonSchema> JsonSchema for AnyOf<A, B> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("{}_or_{}", A::schema_name(), B::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({ "anyOf": [generator.subschema_for::<A>(), generator.subschema_for::<B>()] })
    }
}

/// A request body: its media type and schema, and whether it may be left out.
#[derive(Clone, Debug)]
pub struct Payload {
    pub media: &'static str,
    pub schema: SchemaFn,
    pub required: bool,
}

/// One answer a route gives on success: its status, media type and schema (none for 204), and
/// the routes its answer names a resource of.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub media: Option<&'static str>,
    pub schema: Option<SchemaFn>,
    pub links: Vec<Link>,
}

/// An OpenAPI link: a value of this answer (`$response.body#/ids/0`) that is a parameter of
/// another route, so that a client (or a fuzzer) can follow what it made.
#[derive(Clone, Debug)]
pub struct Link {
    pub method: Method,
    pub path: &'static str,
    pub parameter: &'static str,
    pub value: &'static str,
}

/// One route as the OpenAPI document describes it.
#[derive(Clone, Debug)]
pub struct Operation {
    pub method: Method,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub request: Option<Payload>,
    pub query: Option<SchemaFn>,
    /// The type the handler reads its path parameters as (a tuple for several).
    pub path_params: Option<SchemaFn>,
    pub answers: Vec<Answer>,
    /// The failures this route's own logic answers (those every route of its kind can answer,
    /// such as 401 or a malformed body, the document adds itself).
    pub failures: Vec<u16>,
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
        self.operations.push(Operation { method, path, tag: self.tag, summary, access, request: None, query: None, path_params: None, answers: Vec::new(), failures: Vec::new() });
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

    fn last(&mut self) -> &mut Operation {
        self.operations.last_mut().unwrap_or_else(|| unreachable!("a route is described after it is added"))
    }

    /// The last route takes a JSON body of type `B`.
    pub fn body<B: JsonSchema>(mut self) -> Self {
        self.last().request = Some(Payload { media: "application/json", schema: schema_of::<B>, required: true });
        self
    }

    /// The last route takes a JSON body of type `B`, or none.
    pub fn optional_body<B: JsonSchema>(mut self) -> Self {
        self.last().request = Some(Payload { media: "application/json", schema: schema_of::<B>, required: false });
        self
    }

    /// The last route takes a form of type `B` (seed 002's login).
    pub fn form<B: JsonSchema>(mut self) -> Self {
        self.last().request = Some(Payload { media: "application/x-www-form-urlencoded", schema: schema_of::<B>, required: true });
        self
    }

    /// The last route reads the query string as `Q`'s fields.
    pub fn query<Q: JsonSchema>(mut self) -> Self {
        self.last().query = Some(schema_of::<Q>);
        self
    }

    /// The last route reads its path parameters as `P`.
    pub fn path<P: JsonSchema>(mut self) -> Self {
        self.last().path_params = Some(schema_of::<P>);
        self
    }

    /// The last route answers `status` with a JSON `A`.
    pub fn answers<A: JsonSchema>(mut self, status: u16) -> Self {
        self.last().answers.push(Answer { status, media: Some("application/json"), schema: Some(schema_of::<A>), links: Vec::new() });
        self
    }

    /// The last route answers `status` with a body of another media type, or none.
    pub fn answers_raw(mut self, status: u16, media: Option<&'static str>) -> Self {
        self.last().answers.push(Answer { status, media, schema: None, links: Vec::new() });
        self
    }

    /// The last answer's `value` is the `parameter` of each route `(method, path)`.
    pub fn links(mut self, routes: &[(Method, &'static str)], parameter: &'static str, value: &'static str) -> Self {
        if let Some(answer) = self.last().answers.last_mut() {
            answer.links.extend(routes.iter().map(|(method, path)| Link { method: method.clone(), path, parameter, value }));
        }
        self
    }

    /// The failures the last route's own logic can answer.
    pub fn fails(mut self, statuses: &[u16]) -> Self {
        self.last().failures.extend_from_slice(statuses);
        self
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
