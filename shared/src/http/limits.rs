//! Rate limiting and per-route request metrics, as middleware both APIs wrap their routes in.
//!
//! A signed-in caller is counted by user (the verified token's subject), anyone else by
//! address, each kind against its own per-minute [`allowance`] (governor's GCRA). A client may
//! make `limit` requests per minute, in a burst if it likes; the next one is refused with 429
//! `rate_limited` and `Retry-After`. Every answer carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the allowance is whole again).
//! Limits are per process: with N replicas behind the gateway a client gets up to N times the
//! limit, which is why the gateway keeps its own limit too.

mod address;
mod allowance;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::clock::DefaultClock;
use uuid::Uuid;

pub use self::address::client_address;
use self::allowance::Allowance;
use crate::{
    ApiError,
    auth::{TokenVerifier, bearer_token},
    config::{self, ConfigError, Source},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests per minute per client address for callers without a valid token; 0 = no limit.
    pub anonymous_per_minute: u32,
    /// Requests per minute per signed-in user; 0 = no limit.
    pub user_per_minute: u32,
    /// Take the client address from `X-Real-IP` (set by the gateway) when the connection
    /// comes from a private or loopback address (the gateway's); a client connecting from a
    /// public address is counted by that address whatever it sends.
    pub trust_proxy: bool,
}

impl RateLimitConfig {
    pub const OFF: Self = Self {
        anonymous_per_minute: 0,
        user_per_minute: 0,
        trust_proxy: false,
    };

    /// `RATE_LIMIT_ANONYMOUS` (default 600), `RATE_LIMIT_USER` (default 1200),
    /// `TRUST_PROXY_HEADERS` (default false).
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            anonymous_per_minute: config::parsed(src, "RATE_LIMIT_ANONYMOUS", 600)?,
            user_per_minute: config::parsed(src, "RATE_LIMIT_USER", 1200)?,
            trust_proxy: config::parsed(src, "TRUST_PROXY_HEADERS", false)?,
        })
    }
}

pub struct RateLimiter {
    trust_proxy: bool,
    verifier: TokenVerifier,
    /// Per client address, for callers without a valid token; `None` when unlimited.
    anonymous: Option<Allowance<String>>,
    /// Per signed-in user; `None` when unlimited.
    users: Option<Allowance<Uuid>>,
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the allowance is whole again.
    pub reset_secs: u64,
    /// Seconds until a refused client may try again.
    pub retry_after_secs: u64,
}

/// Who a request counts against.
#[derive(Debug, PartialEq, Eq)]
enum Client {
    User(Uuid),
    Address(String),
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig, verifier: TokenVerifier) -> Arc<Self> {
        Arc::new(Self {
            trust_proxy: config.trust_proxy,
            verifier,
            anonymous: Allowance::per_minute(config.anonymous_per_minute, DefaultClock::default()),
            users: Allowance::per_minute(config.user_per_minute, DefaultClock::default()),
        })
    }

    /// Counts one request from `peer` with `headers` against its client's allowance; `None`
    /// when that kind of client is not limited.
    pub fn check(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<Decision> {
        match self.client(headers, peer)? {
            Client::User(id) => Some(self.users.as_ref()?.check(&id)),
            Client::Address(address) => Some(self.anonymous.as_ref()?.check(&address)),
        }
    }

    /// The client a request counts against; `None` when nothing is limited (no token is
    /// verified then) or an anonymous caller's address is unknown.
    fn client(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<Client> {
        if self.anonymous.is_none() && self.users.is_none() {
            return None;
        }
        let user = bearer_token(headers)
            .ok()
            .flatten()
            .and_then(|token| self.verifier.verify(token).ok());
        match user {
            Some(claims) => Some(Client::User(claims.sub)),
            None if self.anonymous.is_none() => None,
            None => Some(Client::Address(client_address(
                headers,
                peer?,
                self.trust_proxy,
            ))),
        }
    }
}

/// The rate-limiting middleware (`axum::middleware::from_fn_with_state`).
pub async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let Some(decision) = limiter.check(request.headers(), peer) else {
        return next.run(request).await;
    };
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        metrics::counter!("http_rate_limited_total").increment(1);
        ApiError::RateLimited {
            retry_after_secs: decision.retry_after_secs,
        }
        .into_response()
    };
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(decision.reset_secs));
    response
}

/// Counts requests and times them per route: `http_requests_total{method, route, status}` and
/// `http_request_duration_seconds{method, route}`. The route is the matched pattern
/// (`/api/v1/products/{sku}`), so a label never holds an id.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, routing::get};
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use tower::ServiceExt as _;

    use super::*;
    use crate::{
        Role,
        auth::{AUDIENCE, Claims, ISSUER, SigningKey},
    };

    /// A limiter with `config`, and an access token it accepts.
    fn limiter(config: RateLimitConfig) -> (Arc<RateLimiter>, String) {
        let dir = std::env::temp_dir().join(format!("limits-{}", Uuid::new_v4()));
        let src: std::collections::HashMap<String, String> =
            [("CAMREVIEWS_DATA_DIR".to_owned(), dir.display().to_string())].into();
        let key = SigningKey::from_env(&src).unwrap();
        let _ = std::fs::remove_dir_all(dir);
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::now_v7(),
            role: Role::Publisher,
            sid: Uuid::now_v7(),
            iat: now,
            exp: now + 600,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            jti: Uuid::now_v7(),
        };
        let token = encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &EncodingKey::from_ed_der(key.pkcs8_der()),
        )
        .unwrap();
        let verifier = TokenVerifier::new(&key.public);
        (RateLimiter::new(config, verifier), token)
    }

    fn app(limiter: Arc<RateLimiter>) -> Router {
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(limiter, rate_limit))
    }

    /// A GET from the gateway on behalf of `client`.
    async fn get_from(app: &Router, client: &str, token: Option<&str>) -> Response {
        let mut request = axum::http::Request::get("/").header("x-real-ip", client);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let mut request = request.body(Body::empty()).unwrap();
        let gateway: SocketAddr = "10.0.0.5:41000".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(gateway));
        app.clone().oneshot(request).await.unwrap()
    }

    fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
        response.headers().get(name).map(|v| v.to_str().unwrap())
    }

    fn rate_headers(response: &Response) -> [Option<&str>; 3] {
        ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"].map(|h| header(response, h))
    }

    #[tokio::test]
    async fn the_request_after_the_limit_gets_429_with_retry_after_and_other_addresses_do_not() {
        let (limiter, _) = limiter(RateLimitConfig {
            anonymous_per_minute: 3,
            user_per_minute: 3,
            trust_proxy: true,
        });
        let app = app(limiter);
        for (remaining, reset) in [("2", "20"), ("1", "40"), ("0", "60")] {
            let allowed = get_from(&app, "203.0.113.9", None).await;
            assert_eq!(allowed.status(), 200);
            assert_eq!(
                rate_headers(&allowed),
                [Some("3"), Some(remaining), Some(reset)]
            );
        }
        let refused = get_from(&app, "203.0.113.9", None).await;
        assert_eq!(refused.status(), 429);
        assert_eq!(header(&refused, "retry-after"), Some("20"), "60 s / 3");
        assert_eq!(rate_headers(&refused), [Some("3"), Some("0"), Some("60")]);
        let body = axum::body::to_bytes(refused.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "rate_limited");

        let other = get_from(&app, "203.0.113.10", None).await;
        assert_eq!(other.status(), 200);
        assert_eq!(header(&other, "ratelimit-remaining"), Some("2"));
    }

    #[tokio::test]
    async fn a_signed_in_caller_is_counted_by_user_whatever_its_address() {
        let (limiter, token) = limiter(RateLimitConfig {
            anonymous_per_minute: 5,
            user_per_minute: 2,
            trust_proxy: true,
        });
        let app = app(limiter);
        for address in ["198.51.100.1", "198.51.100.2"] {
            let allowed = get_from(&app, address, Some(&token)).await;
            assert_eq!(allowed.status(), 200);
            assert_eq!(header(&allowed, "ratelimit-limit"), Some("2"));
        }
        let refused = get_from(&app, "198.51.100.3", Some(&token)).await;
        assert_eq!(refused.status(), 429);
        // The same address without the token counts against its own allowance.
        let anonymous = get_from(&app, "198.51.100.3", None).await;
        assert_eq!(anonymous.status(), 200);
        assert_eq!(rate_headers(&anonymous)[..2], [Some("5"), Some("4")]);
    }

    #[tokio::test]
    async fn a_limit_of_zero_is_no_limit_and_no_headers() {
        let users_unlimited = RateLimitConfig {
            anonymous_per_minute: 1,
            user_per_minute: 0,
            trust_proxy: true,
        };
        for (config, signed_in) in [(users_unlimited, true), (RateLimitConfig::OFF, false)] {
            let (limiter, token) = limiter(config);
            let app = app(limiter);
            for _ in 0..5 {
                let answer = get_from(&app, "198.51.100.1", signed_in.then_some(&*token)).await;
                assert_eq!(answer.status(), 200);
                assert_eq!(rate_headers(&answer), [None, None, None]);
            }
        }
    }
}
