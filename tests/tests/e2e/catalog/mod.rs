//! The catalog end to end: product commands → events → projector → MongoDB → query API.

mod caching;
mod fresh;
mod index;
mod outages;
mod paging;
mod reads;
mod rebuild;
pub mod replay;
mod scaling;
mod search;

use camreviews_tests::{Api, Reply, Running, TestEnv, Tokens};
use serde_json::{Value, json};

/// The whole loop running for one test: command-api (with the superuser), projector and
/// query-api.
pub struct Catalog {
    pub env: TestEnv,
    pub command: Api,
    pub query: Api,
    pub root: Tokens,
    pub command_api: Running,
    pub projector: Option<Running>,
    pub query_api: Running,
}

impl Catalog {
    pub async fn start() -> Self {
        let env = TestEnv::new().await;
        Self::start_in(env, true).await
    }

    /// In `env`, with or without an in-process projector.
    pub async fn start_in(env: TestEnv, with_projector: bool) -> Self {
        let config = env.command_api_config();
        Self::start_with(env, config, with_projector).await
    }

    /// In `env`, command-api configured by `config` (the superuser is seeded either way).
    pub async fn start_with(
        env: TestEnv,
        config: command_api::Config,
        with_projector: bool,
    ) -> Self {
        let config = command_api::Config {
            superuser: TestEnv::superuser_seed(),
            ..config
        };
        let command_api = env.spawn_command_api_with(config).await;
        let command = Api::new(&command_api);
        let projector = if with_projector {
            Some(env.spawn_projector().await)
        } else {
            None
        };
        let query_api = env.spawn_query_api().await;
        let query = Api::new(&query_api);
        let root = command
            .login(TestEnv::SUPERUSER.0, TestEnv::SUPERUSER.1)
            .await;
        Self {
            env,
            command,
            query,
            root,
            command_api,
            projector,
            query_api,
        }
    }

    /// Creates a product; its SKU and the position of the event.
    pub async fn create(&self, body: Value) -> (String, i64) {
        let created = self
            .command
            .post("/api/v1/products", body, Some(&self.root.access))
            .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        (
            created.body["sku"].as_str().unwrap().to_owned(),
            created.body["position"].as_i64().unwrap(),
        )
    }

    pub async fn update(&self, sku: &str, body: Value) -> i64 {
        let updated = self
            .command
            .put(
                &format!("/api/v1/products/{sku}"),
                body,
                Some(&self.root.access),
            )
            .await;
        assert_eq!(updated.status, 200, "{:?}", updated.body);
        updated.body["position"].as_i64().unwrap()
    }

    /// A GET on the query API that waits for `position` (`X-Min-Position`).
    pub async fn read_at(&self, path: &str, position: i64, token: Option<&str>) -> Reply {
        self.query.get_at(path, position, token).await
    }

    /// Every page of a listing, following `next_cursor`; the pages' sizes and all items.
    pub async fn all_pages(&self, path: &str) -> (Vec<usize>, Vec<Value>) {
        let (mut sizes, mut items) = (Vec::new(), Vec::new());
        let mut next: Option<String> = None;
        loop {
            let url = match &next {
                None => path.to_owned(),
                Some(cursor) => format!("{path}&cursor={cursor}"),
            };
            let page = self.query.get(&url, None).await;
            assert_eq!(page.status, 200, "{url}: {:?}", page.body);
            let page_items = page.body["items"].as_array().unwrap().clone();
            sizes.push(page_items.len());
            items.extend(page_items);
            match page.body["next_cursor"].as_str() {
                Some(cursor) => next = Some(cursor.to_owned()),
                None => return (sizes, items),
            }
        }
    }
}

/// A product body; `n` varies name, price and brand.
pub fn camera(n: usize) -> Value {
    let brands = ["Leica", "Canon", "Nikon", "Fujifilm", "Sony"];
    json!({
        "name": format!("Camera {n:04}"),
        "brand": brands[n % brands.len()],
        "price": format!("{}.{:02}", 100 + n * 7 % 900, n % 100),
        "description": format!("Test camera number {n}"),
        "specs": { "sensor": "full frame", "n": n.to_string() },
    })
}

pub fn skus(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["sku"].as_str().unwrap().to_owned())
        .collect()
}

/// The user id an access token was issued to.
pub fn subject_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}
