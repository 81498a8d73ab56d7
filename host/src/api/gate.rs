//! What every request passes before the router: its body made to drain
//! when dropped unread (`drain.rs`), then who may call (`Auth::admit`:
//! dev mode's loopback check, tokens and their namespaces).
//!
//! One service written out rather than axum middleware: each
//! `middleware::from_fn` layer boxes a clone of the route behind it and a
//! future, per request, and the three layers this replaces took about a
//! sixth of the API threads' time under a load of activity starts.

use super::drain::{Drainable, Drained};
use super::Auth;
use axum::response::{IntoResponse as _, Response};
use axum::routing::future::RouteFuture;
use axum::Router;
use futures_util::future::Either;
use http::Request;
use std::convert::Infallible;
use std::future::Ready;
use std::sync::Arc;

/// The router behind its gate: what the server serves.
#[derive(Clone)]
pub struct Gate {
    router: Router,
    auth: Arc<Auth>,
}

/// A request's answer: a refusal at once, or the router's.
pub type GateFuture = Either<Ready<Result<Response, Infallible>>, RouteFuture<Infallible>>;

impl Gate {
    pub(super) fn new(router: Router, auth: Arc<Auth>) -> Self {
        Self { router, auth }
    }
}

impl<B> hyper::service::Service<Request<B>> for Gate
where
    B: Drainable,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GateFuture;

    /// Answers one request: refused at once, or passed to the router.
    fn call(&self, req: Request<B>) -> GateFuture {
        let mut req = req.map(Drained::new);
        match self.auth.admit(&mut req) {
            // A refused request's body drains as it drops here.
            Err(e) => Either::Left(std::future::ready(Ok(e.into_response()))),
            Ok(()) => {
                let mut router = self.router.clone();
                Either::Right(tower::Service::call(&mut router, req))
            }
        }
    }
}
