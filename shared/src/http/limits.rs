//! Rate limiting and per-route request metrics, as middleware both APIs wrap their routes in.
//!
//! The limiter is a GCRA (the "leaky bucket as a meter") per client: a signed-in caller is
//! counted by user (the verified token's subject), anyone else by address. Each client may
//! make `limit` requests per minute, in a burst if it likes; the next one is refused with 429
//! `rate_limited` and `Retry-After`. Every answer carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the allowance is whole again).
//! Limits are per process: with N replicas behind the gateway a client gets up to N times the
//! limit, which is why the gateway keeps its own limit too.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    ApiError,
    auth::{TokenVerifier, bearer_token},
    config::{self, ConfigError, Source},
};

const WINDOW: Duration = Duration::from_secs(60);
/// Clients remembered before idle ones are forgotten.
const MAX_CLIENTS: usize = 100_000;

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
    config: RateLimitConfig,
    verifier: TokenVerifier,
    /// Client → theoretical arrival time of its next request.
    clients: Mutex<HashMap<String, Instant>>,
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

impl RateLimiter {
    pub fn new(config: RateLimitConfig, verifier: TokenVerifier) -> Arc<Self> {
        Arc::new(Self {
            config,
            verifier,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one request of `client` against `limit` per minute.
    pub fn check(&self, client: &str, limit: u32, now: Instant) -> Decision {
        let interval = WINDOW / limit.max(1);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CLIENTS {
            // Forget clients whose allowance is whole again; if nearly all are active, forget
            // all (a moment of leniency rather than unbounded memory).
            clients.retain(|_, tat| *tat > now);
            if clients.len() >= MAX_CLIENTS * 9 / 10 {
                clients.clear();
            }
        }
        let tat = clients.get(client).copied().unwrap_or(now).max(now);
        let next = tat + interval;
        let ahead = next - now;
        if ahead > WINDOW {
            let wait = ahead - WINDOW;
            return Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_secs: ceil_secs(tat - now),
                retry_after_secs: ceil_secs(wait).max(1),
            };
        }
        clients.insert(client.to_owned(), next);
        let left = (WINDOW - ahead).as_nanos() / interval.as_nanos().max(1);
        Decision {
            allowed: true,
            limit,
            remaining: u32::try_from(left).unwrap_or(u32::MAX),
            reset_secs: ceil_secs(ahead),
            retry_after_secs: 0,
        }
    }

    /// The client a request counts against, and its limit; `None` when unlimited.
    fn client(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<(String, u32)> {
        let user = bearer_token(headers)
            .ok()
            .flatten()
            .and_then(|token| self.verifier.verify(token).ok());
        match user {
            Some(claims) if self.config.user_per_minute > 0 => {
                Some((format!("user:{}", claims.sub), self.config.user_per_minute))
            }
            Some(_) => None,
            None if self.config.anonymous_per_minute > 0 => Some((
                format!(
                    "addr:{}",
                    client_address(headers, peer?, self.config.trust_proxy)
                ),
                self.config.anonymous_per_minute,
            )),
            None => None,
        }
    }
}

/// The client a request comes from, as the rate limiter and the login throttle count it: the
/// `X-Real-IP` the gateway set when `trust_proxy` is on and the connection comes from an
/// internal address (the gateway's), else the peer; an IPv6 address counts by its /64.
pub fn client_address(headers: &HeaderMap, peer: IpAddr, trust_proxy: bool) -> String {
    let behind_proxy = trust_proxy && internal(peer);
    let forwarded = behind_proxy
        .then(|| headers.get("x-real-ip")?.to_str().ok()?.trim().parse().ok())
        .flatten();
    client_key(forwarded.unwrap_or(peer))
}

/// Loopback or private: where a gateway in front of the service connects from.
fn internal(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || v6.to_ipv4_mapped().is_some_and(|v4| internal(IpAddr::V4(v4)))
        }
    }
}

/// An IPv4 address, or an IPv6 address's /64 (one host usually holds a whole /64).
fn client_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
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
    let Some((client, limit)) = limiter.client(request.headers(), peer) else {
        return next.run(request).await;
    };
    let decision = limiter.check(&client, limit, Instant::now());
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
    use super::*;

    fn limiter() -> Arc<RateLimiter> {
        let dir = std::env::temp_dir().join(format!("limits-{}", uuid::Uuid::new_v4()));
        let src: HashMap<String, String> =
            [("CAMREVIEWS_DATA_DIR".to_owned(), dir.display().to_string())].into();
        let key = crate::auth::SigningKey::from_env(&src).unwrap();
        RateLimiter::new(
            RateLimitConfig {
                anonymous_per_minute: 3,
                user_per_minute: 3,
                trust_proxy: true,
            },
            TokenVerifier::new(&key.public),
        )
    }

    #[test]
    fn forwarded_addresses_count_only_from_an_internal_peer() {
        let limiter = limiter();
        let mut headers = HeaderMap::new();
        headers.insert("x-real-ip", HeaderValue::from_static("203.0.113.9"));
        let from_gateway = limiter.client(&headers, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(from_gateway.unwrap().0, "addr:203.0.113.9");
        let from_outside = limiter.client(&headers, Some("198.51.100.1".parse().unwrap()));
        assert_eq!(
            from_outside.unwrap().0,
            "addr:198.51.100.1",
            "a spoofed header is ignored"
        );
        let v6 = limiter.client(
            &HeaderMap::new(),
            Some("2001:db8:1:2:3:4:5:6".parse().unwrap()),
        );
        assert_eq!(v6.unwrap().0, "addr:2001:db8:1:2::/64");
    }

    #[test]
    fn the_request_after_the_limit_is_refused_until_the_allowance_grows_back() {
        let limiter = limiter();
        let start = Instant::now();
        let decisions: Vec<Decision> = (0..4).map(|_| limiter.check("a", 3, start)).collect();
        assert_eq!(
            decisions.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0]
        );
        assert!(decisions[..3].iter().all(|d| d.allowed));
        assert!(!decisions[3].allowed);
        assert_eq!(
            decisions[3].retry_after_secs, 20,
            "one request's worth: 60 s / 3"
        );
        // Another client is not affected.
        assert!(limiter.check("b", 3, start).allowed);
        // After 20 s, one more.
        let later = start + Duration::from_secs(20);
        assert!(limiter.check("a", 3, later).allowed);
        assert!(!limiter.check("a", 3, later).allowed);
    }
}
