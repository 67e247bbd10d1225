//! Which answers the request log counts as failures (logged at ERROR):
//! server errors, except the health probes' — a readiness 503 says "not
//! ready yet" (loading, a follower catching up, shutting down), which
//! is expected, and is the probe's answer rather than a fault. Only the
//! probe paths are spared, so a 503 that sheds connections still logs.

use std::fmt;

use axum::http::{Request, Response};
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, MakeClassifier, NeverClassifyEos, ServerErrorsAsFailures,
    ServerErrorsFailureClass,
};

use super::ops::{LIVENESS, READINESS};

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ProbesAreNotFailures;

#[derive(Debug, Clone, Copy)]
pub(super) struct Classifier {
    probe: bool,
}

impl MakeClassifier for ProbesAreNotFailures {
    type Classifier = Classifier;
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn make_classifier<B>(&self, req: &Request<B>) -> Classifier {
        let path = req.uri().path();
        Classifier {
            probe: path == READINESS || path == LIVENESS,
        }
    }
}

impl ClassifyResponse for Classifier {
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn classify_response<B>(
        self,
        res: &Response<B>,
    ) -> ClassifiedResponse<Self::FailureClass, Self::ClassifyEos> {
        if self.probe {
            ClassifiedResponse::Ready(Ok(()))
        } else {
            ServerErrorsAsFailures::new().classify_response(res)
        }
    }

    fn classify_error<E: fmt::Display + 'static>(self, error: &E) -> Self::FailureClass {
        ServerErrorsAsFailures::new().classify_error(error)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn failed(path: &str, status: StatusCode) -> bool {
        let request = Request::get(path).body(()).expect("request");
        let response = Response::builder()
            .status(status)
            .body(())
            .expect("response");
        let classifier = ProbesAreNotFailures.make_classifier(&request);
        matches!(
            classifier.classify_response(&response),
            ClassifiedResponse::Ready(Err(_))
        )
    }

    #[test]
    fn only_the_probes_503_is_not_a_failure() {
        assert!(!failed(READINESS, StatusCode::SERVICE_UNAVAILABLE));
        assert!(!failed(LIVENESS, StatusCode::SERVICE_UNAVAILABLE));
        assert!(failed(
            "/api/catalog/entities",
            StatusCode::SERVICE_UNAVAILABLE
        ));
        assert!(failed("/metrics", StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!failed("/api/catalog/entities", StatusCode::OK));
    }
}
