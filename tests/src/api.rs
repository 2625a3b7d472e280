//! A typed HTTP client for the tests: requests that return status, body and headers, and the
//! few steps most tests need (register, log in).

use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};

use crate::Running;

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Reply {
    /// The problem+json `code`, if any.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(service: &Running) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: service.url(""),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Self::reply(request.send().await.unwrap()).await
    }

    pub async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    /// A request builder for the unusual cases (raw bodies, extra headers).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, None, token).await
    }

    /// A read that waits (up to 5 s) until the read models have applied `position`.
    pub async fn get_at(&self, path: &str, position: i64, token: Option<&str>) -> Reply {
        let mut request = self
            .request(Method::GET, path)
            .header("x-min-position", position.to_string())
            .header("x-max-wait-ms", "5000");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Self::reply(request.send().await.expect("the request is sent")).await
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Reply {
        self.send(Method::POST, path, Some(body), token).await
    }

    pub async fn put(&self, path: &str, body: Value, token: Option<&str>) -> Reply {
        self.send(Method::PUT, path, Some(body), token).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::DELETE, path, None, token).await
    }

    /// Registers a publisher in south-america; returns the user object.
    pub async fn register(&self, username: &str, password: &str) -> Value {
        let reply = self
            .post(
                "/api/v1/auth/register",
                json!({ "username": username, "email": format!("{username}@example.com"), "password": password, "region": "south-america" }),
                None,
            )
            .await;
        assert_eq!(reply.status, 201, "register {username}: {:?}", reply.body);
        reply.body
    }

    pub async fn login(&self, username: &str, password: &str) -> Tokens {
        let reply = self
            .post(
                "/api/v1/auth/login",
                json!({ "username": username, "password": password }),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "login {username}: {:?}", reply.body);
        Tokens {
            access: reply.body["access_token"].as_str().unwrap().to_owned(),
            refresh: reply.body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }
}
