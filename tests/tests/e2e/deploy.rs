//! The deployment files, parsed and checked for their wiring: `docker-compose.yml`, the
//! Kubernetes manifests under `deploy/k8s/`, the gateway and Prometheus configuration.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize as _;
use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn yaml_documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = Value::deserialize(document).unwrap();
            value.apply_merge().unwrap();
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The services of API.md and their ports.
const SERVICES: [(&str, u16, &str); 4] = [
    ("command-api", 8081, "COMMAND_API_ADDR"),
    ("query-api", 8082, "QUERY_API_ADDR"),
    ("projector", 8083, "PROJECTOR_ADDR"),
    ("notifier", 8084, "NOTIFIER_ADDR"),
];

/// Every variable a service reads: API.md's table, and the extras `docs/api-notes.md` lists.
const KNOWN_ENV: [&str; 29] = [
    "DATABASE_URL",
    "NATS_URL",
    "NATS_PREFIX",
    "MONGODB_URL",
    "MONGODB_DB",
    "SMTP_URL",
    "MAIL_FROM",
    "JWT_PRIVATE_KEY",
    "JWT_PUBLIC_KEY",
    "ACCESS_TOKEN_TTL",
    "REFRESH_TOKEN_TTL",
    "SUPERUSER_USERNAME",
    "SUPERUSER_EMAIL",
    "SUPERUSER_PASSWORD",
    "PUBLISH_REGIONS",
    "BLOB_DIR",
    "MAX_IMAGE_BYTES",
    "RUST_LOG",
    "LOG_FORMAT",
    "COMMAND_API_ADDR",
    "QUERY_API_ADDR",
    "PROJECTOR_ADDR",
    "NOTIFIER_ADDR",
    "CAMREVIEWS_DATA_DIR",
    "RATE_LIMIT_ANONYMOUS",
    "RATE_LIMIT_USER",
    "TRUST_PROXY_HEADERS",
    "QUERY_CACHE_BYTES",
    "PROJECTOR_CONSUMER",
];

/// An image reference pinned to a version: a tag with a digit in it, not `latest`.
fn pinned(image: &str) -> bool {
    match image.rsplit_once(':') {
        Some((_, tag)) => tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()),
        None => false,
    }
}

fn env_names(environment: &Value) -> Vec<String> {
    match environment {
        Value::Mapping(map) => map
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| Some(i.as_str()?.split('=').next()?.to_owned()))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn compose_runs_every_service_healthy_pinned_and_wired_as_the_contract_says() {
    let compose = &yaml_documents("docker-compose.yml")[0];
    let services = compose["services"].as_mapping().unwrap();
    let names: Vec<&str> = services.keys().filter_map(Value::as_str).collect();
    for needed in [
        "postgres",
        "nats",
        "mongo",
        "mailpit",
        "command-api",
        "query-api",
        "projector",
        "notifier",
        "gateway",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(&needed), "compose lacks {needed}");
    }
    for (name, service) in services {
        let name = name.as_str().unwrap();
        assert!(
            service["healthcheck"]["test"].is_sequence(),
            "{name} has no health check"
        );
        let image = service["image"].as_str().unwrap();
        assert!(
            pinned(image) || !service["build"].is_null(),
            "{name}'s image {image} is not pinned to a version"
        );
        if let Some(depends) = service["depends_on"].as_mapping() {
            for (on, condition) in depends {
                assert_eq!(
                    condition["condition"].as_str(),
                    Some("service_healthy"),
                    "{name} waits for {on:?} to be healthy"
                );
                assert!(
                    services.contains_key(on),
                    "{name} depends on unknown {on:?}"
                );
            }
        }
    }
    assert_eq!(
        compose["services"]["grafana"]["profiles"][0].as_str(),
        Some("observability")
    );

    for (name, port, addr_var) in SERVICES {
        let service = &compose["services"][name];
        let environment = &service["environment"];
        assert_eq!(
            environment[addr_var].as_str(),
            Some(format!("0.0.0.0:{port}").as_str()),
            "{name} listens on its API.md port"
        );
        for variable in env_names(environment) {
            assert!(
                KNOWN_ENV.contains(&variable.as_str()),
                "{name} sets {variable}, which no service reads"
            );
        }
        let published: Vec<&str> = service["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            published.iter().any(|p| p.ends_with(&format!(":{port}"))),
            "{name} publishes {port}: {published:?}"
        );
        let probe = service["healthcheck"]["test"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            probe.contains(&format!(":{port}/readyz")),
            "{name}'s health check asks /readyz: {probe}"
        );
        for key in ["DATABASE_URL", "MONGODB_URL", "NATS_URL"] {
            if let Some(url) = environment[key].as_str() {
                assert!(
                    !url.contains("127.0.0.1"),
                    "{name}'s {key} points at itself"
                );
            }
        }
    }
    // Secrets come from .env: nothing secret is written into the file.
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    assert!(text.contains("${POSTGRES_PASSWORD:?"));
    let example = std::fs::read_to_string(root().join(".env.example")).unwrap();
    for needed in [
        "POSTGRES_PASSWORD",
        "SUPERUSER_PASSWORD",
        "JWT_PRIVATE_KEY",
        "GRAFANA_ADMIN_PASSWORD",
    ] {
        assert!(example.contains(needed), ".env.example lacks {needed}");
    }
    let ignored = std::fs::read_to_string(root().join(".gitignore")).unwrap();
    assert!(
        ignored.lines().any(|l| l.trim() == ".env"),
        ".env is ignored"
    );
}

#[test]
fn kubernetes_manifests_probe_limit_and_expose_every_service() {
    let kustomization = &yaml_documents("deploy/k8s/kustomization.yaml")[0];
    let mut objects: Vec<Value> = Vec::new();
    for resource in kustomization["resources"].as_sequence().unwrap() {
        let file = format!("deploy/k8s/{}", resource.as_str().unwrap());
        assert!(root().join(&file).exists(), "{file} is listed but missing");
        objects.extend(yaml_documents(&file));
    }
    let by_kind = |kind: &str| -> BTreeMap<String, &Value> {
        objects
            .iter()
            .filter(|o| o["kind"].as_str() == Some(kind))
            .map(|o| (o["metadata"]["name"].as_str().unwrap().to_owned(), o))
            .collect()
    };
    let deployments = by_kind("Deployment");
    let services = by_kind("Service");
    let config = by_kind("ConfigMap");
    let config_keys: Vec<String> = config
        .values()
        .flat_map(|c| env_names(&c["data"]))
        .collect();
    for (name, port, addr_var) in SERVICES {
        let deployment = deployments
            .get(name)
            .unwrap_or_else(|| panic!("no Deployment {name}"));
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/healthz",
            "{name}"
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/readyz",
            "{name}"
        );
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !container["resources"][bound][resource].is_null(),
                    "{name} has no {resource} {bound}"
                );
            }
        }
        assert_eq!(
            container["ports"][0]["containerPort"].as_u64(),
            Some(u64::from(port))
        );
        let env = container["env"].as_sequence().unwrap();
        let addr = env
            .iter()
            .find(|e| e["name"].as_str() == Some(addr_var))
            .unwrap_or_else(|| panic!("{name} sets no {addr_var}"));
        assert_eq!(
            addr["value"].as_str(),
            Some(format!("0.0.0.0:{port}").as_str())
        );
        for variable in env
            .iter()
            .filter_map(|e| e["name"].as_str().map(str::to_owned))
            .chain(config_keys.iter().cloned())
        {
            assert!(
                KNOWN_ENV.contains(&variable.as_str()),
                "{name} gets {variable}, which no service reads"
            );
        }
        assert!(
            container["envFrom"][0]["configMapRef"]["name"]
                .as_str()
                .is_some(),
            "{name} reads the ConfigMap"
        );
        let service = services
            .get(name)
            .unwrap_or_else(|| panic!("no Service {name}"));
        assert_eq!(
            service["spec"]["ports"][0]["port"].as_u64(),
            Some(u64::from(port))
        );
    }
    // Secrets by reference only.
    assert!(by_kind("Secret").is_empty(), "no Secret is committed");
    let autoscalers = by_kind("HorizontalPodAutoscaler");
    for api in ["command-api", "query-api"] {
        let hpa = autoscalers
            .get(api)
            .unwrap_or_else(|| panic!("no autoscaler for {api}"));
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], api);
    }
    let budgets = by_kind("PodDisruptionBudget");
    assert!(budgets.contains_key("command-api") && budgets.contains_key("query-api"));
    let image = &kustomization["images"][0];
    assert!(pinned(&format!(
        "{}:{}",
        image["newName"].as_str().unwrap(),
        image["newTag"].as_str().unwrap()
    )));
}

#[test]
fn the_gateway_and_prometheus_point_at_the_services() {
    let nginx = std::fs::read_to_string(root().join("deploy/nginx/nginx.conf")).unwrap();
    for upstream in ["command-api:8081", "query-api:8082", "notifier:8084"] {
        assert!(
            nginx.contains(&format!("server {upstream}")),
            "nginx lacks {upstream}"
        );
    }
    for needed in [
        "proxy_buffering off",
        "proxy_cache_use_stale",
        "client_max_body_size",
        "location /api/v1/notifications/",
        "location = /api/v1/events/stream",
    ] {
        assert!(nginx.contains(needed), "nginx.conf lacks {needed}");
    }
    let prometheus = &yaml_documents("deploy/prometheus/prometheus.yml")[0];
    let jobs: Vec<&str> = prometheus["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|j| j["job_name"].as_str())
        .collect();
    assert_eq!(jobs, ["command-api", "query-api", "projector", "notifier"]);
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/dashboards/camreviews.json")).unwrap(),
    )
    .unwrap();
    let queries: String = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    for series in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "events_appended_total",
        "relay_lag_events",
        "projector_lag_events",
        "projector_model_position",
        "nats_consumer_pending",
        "dlq_depth",
        "notifier_mails_sent_total",
        "notifier_mail_failures_total",
        "notifier_views_tallied_total",
    ] {
        assert!(
            queries.contains(series),
            "the dashboard does not graph {series}"
        );
    }
}
