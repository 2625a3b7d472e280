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

/// Every object of the Kubernetes manifests, from each file the kustomization lists.
fn kustomized_objects() -> Vec<Value> {
    let kustomization = &yaml_documents("deploy/k8s/kustomization.yaml")[0];
    kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|resource| yaml_documents(&format!("deploy/k8s/{}", resource.as_str().unwrap())))
        .collect()
}

/// The strings of a YAML sequence of strings (none when `value` is not a sequence).
fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The uid and gid the image runs as (`Dockerfile`), which compose and Kubernetes repeat.
const IMAGE_USER: u64 = 10001;

#[test]
fn kubernetes_pods_run_unprivileged_on_a_read_only_root() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile
            .lines()
            .any(|l| l.trim() == format!("USER {IMAGE_USER}:{IMAGE_USER}")),
        "the image runs as {IMAGE_USER}:{IMAGE_USER}, numerically (runAsNonRoot can check it)"
    );
    let objects = kustomized_objects();
    let blob_dir = objects
        .iter()
        .find(|o| o["kind"].as_str() == Some("ConfigMap") && !o["data"]["BLOB_DIR"].is_null())
        .and_then(|c| c["data"]["BLOB_DIR"].as_str())
        .expect("the ConfigMap sets BLOB_DIR")
        .to_owned();
    let workloads: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some("Deployment" | "StatefulSet" | "DaemonSet")
            )
        })
        .collect();
    for (name, ..) in SERVICES {
        assert!(
            workloads
                .iter()
                .any(|w| w["metadata"]["name"].as_str() == Some(name)),
            "no workload {name}"
        );
    }
    for workload in workloads {
        let name = workload["metadata"]["name"].as_str().unwrap();
        let pod = &workload["spec"]["template"]["spec"];
        let security = &pod["securityContext"];
        assert_eq!(
            security["runAsNonRoot"].as_bool(),
            Some(true),
            "{name}: runAsNonRoot"
        );
        for id in ["runAsUser", "runAsGroup", "fsGroup"] {
            assert_eq!(
                security[id].as_u64(),
                Some(IMAGE_USER),
                "{name}: {id} is the image's user"
            );
        }
        assert_eq!(
            security["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault"),
            "{name}: the runtime's default seccomp profile"
        );
        assert_eq!(
            pod["automountServiceAccountToken"].as_bool(),
            Some(false),
            "{name} mounts no Kubernetes API token"
        );
        let containers = pod["containers"]
            .as_sequence()
            .unwrap()
            .iter()
            .chain(pod["initContainers"].as_sequence().into_iter().flatten());
        for container in containers {
            let container_name = container["name"].as_str().unwrap();
            let security = &container["securityContext"];
            assert_eq!(
                security["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{name}/{container_name}: allowPrivilegeEscalation"
            );
            assert_eq!(
                security["readOnlyRootFilesystem"].as_bool(),
                Some(true),
                "{name}/{container_name}: readOnlyRootFilesystem"
            );
            assert_ne!(
                security["privileged"].as_bool(),
                Some(true),
                "{name}/{container_name}: privileged"
            );
            assert!(
                strings(&security["capabilities"]["drop"]).contains(&"ALL"),
                "{name}/{container_name} drops every capability"
            );
            assert!(
                strings(&security["capabilities"]["add"]).is_empty(),
                "{name}/{container_name} adds no capability"
            );
            // With a read-only root, what the service writes must be a volume.
            let mounts = container["volumeMounts"].as_sequence();
            let mount = |path: &str| {
                mounts
                    .into_iter()
                    .flatten()
                    .find(|m| m["mountPath"].as_str() == Some(path))
            };
            assert!(
                mount("/tmp").is_some(),
                "{name}/{container_name} has a writable /tmp"
            );
            if name == "command-api" {
                let blobs = mount(blob_dir.as_str()).expect("command-api mounts BLOB_DIR");
                assert_ne!(
                    blobs["readOnly"].as_bool(),
                    Some(true),
                    "command-api writes the blobs"
                );
            }
        }
    }
}

#[test]
fn compose_runs_the_services_unprivileged_on_a_read_only_root() {
    let compose = &yaml_documents("docker-compose.yml")[0];
    for (name, ..) in SERVICES {
        let service = &compose["services"][name];
        assert_eq!(
            service["user"].as_str(),
            Some(format!("{IMAGE_USER}:{IMAGE_USER}").as_str()),
            "{name} runs as the image's user"
        );
        assert_eq!(
            service["read_only"].as_bool(),
            Some(true),
            "{name}: read_only"
        );
        assert!(
            strings(&service["cap_drop"]).contains(&"ALL"),
            "{name} drops every capability"
        );
        assert!(
            strings(&service["security_opt"]).contains(&"no-new-privileges:true"),
            "{name}: no-new-privileges"
        );
        assert!(
            strings(&service["tmpfs"])
                .iter()
                .any(|t| t.split(':').next() == Some("/tmp")),
            "{name} has a writable /tmp"
        );
    }
}

/// The port numbers of every rule in `rules` (a policy's `ingress` or `egress`).
fn policy_ports(rules: &Value) -> Vec<u64> {
    rules
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["ports"].as_sequence().into_iter().flatten())
        .filter_map(|port| port["port"].as_u64())
        .collect()
}

/// The policies whose pod selector names the app `app`.
fn policies_selecting<'a>(policies: &'a [Value], app: &str) -> Vec<&'a Value> {
    policies
        .iter()
        .filter(|p| {
            p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str() == Some(app)
        })
        .collect()
}

#[test]
fn kubernetes_network_policies_deny_by_default_and_open_only_what_each_service_needs() {
    let kustomization = &yaml_documents("deploy/k8s/kustomization.yaml")[0];
    assert!(
        strings(&kustomization["resources"]).contains(&"network-policies.yaml"),
        "the kustomization applies network-policies.yaml"
    );
    let policies: Vec<Value> = kustomized_objects()
        .into_iter()
        .filter(|o| o["kind"].as_str() == Some("NetworkPolicy"))
        .collect();
    // Default deny: every pod, ingress (and egress), no rule letting anything through.
    let default_deny = policies.iter().find(|p| {
        let spec = &p["spec"];
        spec["podSelector"]
            .as_mapping()
            .is_some_and(|selector| selector.is_empty())
            && strings(&spec["policyTypes"]).contains(&"Ingress")
            && spec["ingress"]
                .as_sequence()
                .is_none_or(|rules| rules.is_empty())
    });
    let default_deny = default_deny.expect("no default-deny ingress NetworkPolicy");
    assert!(
        strings(&default_deny["spec"]["policyTypes"]).contains(&"Egress")
            && default_deny["spec"]["egress"]
                .as_sequence()
                .is_none_or(|rules| rules.is_empty()),
        "egress is denied by default too"
    );
    for (name, port, _) in SERVICES {
        let own = policies_selecting(&policies, name);
        assert!(!own.is_empty(), "no NetworkPolicy selects {name}");
        let ingress: Vec<u64> = own
            .iter()
            .flat_map(|p| policy_ports(&p["spec"]["ingress"]))
            .collect();
        assert!(
            !ingress.is_empty() && ingress.iter().all(|p| *p == u64::from(port)),
            "{name} is reachable on {port} only: {ingress:?}"
        );
        let egress: Vec<u64> = own
            .iter()
            .flat_map(|p| policy_ports(&p["spec"]["egress"]))
            .collect();
        for needed in [53, 4222] {
            assert!(egress.contains(&needed), "{name} reaches port {needed}");
        }
        let mongo = ["query-api", "projector", "notifier"].contains(&name);
        assert_eq!(egress.contains(&27017), mongo, "{name} and MongoDB");
        assert_eq!(
            egress.contains(&5432),
            name == "command-api",
            "{name} and PostgreSQL"
        );
        let smtp = egress.iter().any(|p| [25, 465, 587].contains(p));
        assert_eq!(smtp, name == "notifier", "{name} and SMTP");
    }
    // Nothing but command-api (and an operator's camctl pod) talks to the event store.
    for policy in &policies {
        if policy_ports(&policy["spec"]["egress"]).contains(&5432) {
            let app = policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                .as_str()
                .unwrap_or("(every pod)");
            assert!(
                ["command-api", "camctl"].contains(&app),
                "{app} may reach PostgreSQL"
            );
        }
    }
}

/// One user of a nats-server configuration and its permissions.
#[derive(Debug)]
struct NatsUser {
    name: String,
    password: String,
    publish_allow: Vec<String>,
    publish_deny: Vec<String>,
    subscribe_allow: Vec<String>,
}

impl NatsUser {
    /// As nats-server decides: some allow pattern covers `subject` and no deny pattern does.
    fn may_publish(&self, subject: &str) -> bool {
        self.publish_allow.iter().any(|p| nats_covers(p, subject))
            && !self.publish_deny.iter().any(|p| nats_covers(p, subject))
    }
}

/// Whether the subject pattern `pattern` (`*` one token, `>` the rest) covers `subject`.
fn nats_covers(pattern: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for wanted in pattern.split('.') {
        match (wanted, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (wanted, Some(token)) if wanted == token => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

/// The quoted strings of the `[ … ]` list right after `key` in `text`; none without `key`.
fn nats_list(text: &str, key: &str) -> Vec<String> {
    let Some(at) = text.find(key) else {
        return Vec::new();
    };
    let rest = &text[at + key.len()..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
        panic!("{key} has no [list]");
    };
    assert!(
        rest[..open].trim().is_empty() && open < close,
        "{key} is followed by a [list]"
    );
    rest[open + 1..close]
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|s| s.trim_matches('"'))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The users of the `authorization` block of a nats-server configuration, read the simple
/// way its layout allows: one `user: "name"` per user, then `password:`, then `publish`
/// (`allow: [...]`, `deny: [...]`) before `subscribe` (`allow: [...]`).
fn nats_users(path: &str) -> Vec<NatsUser> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    // Comments out (no value in the file holds a '#').
    let text = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !text.contains("no_auth_user"),
        "clients without credentials get no user"
    );
    let at = text.find("authorization").expect("the server has users");
    text[at..]
        .split("user:")
        .skip(1)
        .map(|block| {
            assert!(block.trim_start().starts_with('"'), "user names are quoted");
            let name = block.split('"').nth(1).unwrap().to_owned();
            let password = block
                .split("password:")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or("")
                .to_owned();
            let publish = block.find("publish").map_or("", |at| &block[at..]);
            let publish = &publish[..publish.find("subscribe").unwrap_or(publish.len())];
            let subscribe = block.find("subscribe").map_or("", |at| &block[at..]);
            NatsUser {
                name,
                password,
                publish_allow: nats_list(publish, "allow:"),
                publish_deny: nats_list(publish, "deny:"),
                subscribe_allow: nats_list(subscribe, "allow:"),
            }
        })
        .collect()
}

/// The users that may publish to `subject`, in the file's order.
fn nats_publishers<'a>(users: &'a [NatsUser], subject: &str) -> Vec<&'a str> {
    users
        .iter()
        .filter(|u| u.may_publish(subject))
        .map(|u| u.name.as_str())
        .collect()
}

/// `NATS_<NAME>_PASSWORD`: the variable holding a NATS user's password.
fn nats_password_variable(user: &str) -> String {
    format!("NATS_{}_PASSWORD", user.to_uppercase().replace('-', "_"))
}

#[test]
fn nats_gives_each_service_its_own_user_and_only_the_relay_and_operators_publish_events() {
    let users = nats_users("nats/nats-container.conf");
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["command-api", "query-api", "projector", "notifier", "ops"]
    );
    let user = |name: &str| users.iter().find(|u| u.name == name).unwrap();
    let may_publish = |subject: &str| nats_publishers(&users, subject);
    for u in &users {
        let name = &u.name;
        assert_eq!(
            u.password,
            format!("${}", nats_password_variable(name)),
            "{name}'s password comes from the server's environment"
        );
        // Without a list, nats-server allows everything.
        assert!(
            !u.publish_allow.is_empty() && !u.subscribe_allow.is_empty(),
            "{name} has allow lists for publish and subscribe"
        );
        assert!(
            u.subscribe_allow.iter().any(|s| s == "_INBOX.>"),
            "{name} receives replies"
        );
        assert!(
            !u.may_publish("_INBOX.a1b2.1"),
            "{name} may not answer others' requests"
        );
    }

    // Events: the outbox relay, and operators (`camctl dlq requeue` republishes a letter).
    assert_eq!(
        may_publish("events.product.0190b7a4.ProductCreated"),
        ["command-api", "ops"]
    );
    assert_eq!(
        may_publish("events.user.0190b7a4.SessionRevoked"),
        ["command-api", "ops"]
    );
    assert_eq!(may_publish("views.product.CAM-1"), ["query-api", "ops"]);
    assert_eq!(
        may_publish("dlq.projector.events.product.0190b7a4.ProductCreated"),
        ["projector", "notifier"]
    );
    for name in ["query-api", "projector", "notifier"] {
        let u = user(name);
        assert!(
            u.publish_deny.iter().any(|d| d == "events.>"),
            "{name} is denied events.> in so many words"
        );
        // ensure_streams runs in every service: it may create the three streams.
        for subject in [
            "$JS.API.STREAM.INFO.EVENTS",
            "$JS.API.STREAM.CREATE.EVENTS",
            "$JS.API.STREAM.CREATE.VIEWS",
            "$JS.API.STREAM.CREATE.DLQ",
            "$JS.API.STREAM.MSG.GET.EVENTS",
            "$JS.API.CONSUMER.CREATE.EVENTS",
            "$JS.API.CONSUMER.INFO.EVENTS.projector",
            "$JS.API.CONSUMER.MSG.NEXT.EVENTS.projector",
            "$JS.API.CONSUMER.DELETE.EVENTS.a1b2",
        ] {
            assert!(u.may_publish(subject), "{name} needs {subject}");
        }
        // An update could add subjects, sources or a republish to EVENTS: events by the back
        // door. So could a new stream of one's own.
        for subject in [
            "$JS.API.STREAM.UPDATE.EVENTS",
            "$JS.API.STREAM.DELETE.EVENTS",
            "$JS.API.STREAM.PURGE.EVENTS",
            "$JS.API.STREAM.MSG.DELETE.EVENTS",
            "$JS.API.STREAM.CREATE.ANOTHER",
        ] {
            assert!(!u.may_publish(subject), "{name} may publish {subject}");
        }
    }
    for name in ["projector", "notifier"] {
        assert!(
            user(name).may_publish("$JS.ACK.EVENTS.projector.1.2.3.1700000000000000000.0"),
            "{name} acknowledges"
        );
        // A push consumer on DLQ could deliver its own dead letters into events.>.
        assert!(!user(name).may_publish("$JS.API.CONSUMER.CREATE.DLQ"));
    }
    assert!(!user("query-api").may_publish("$JS.API.CONSUMER.CREATE.VIEWS"));
    assert!(
        user("notifier")
            .subscribe_allow
            .iter()
            .any(|s| s == "events.product.>"),
        "the notifier follows product events live"
    );
    let relay = user("command-api");
    for subject in [
        "$JS.API.STREAM.CREATE.EVENTS",
        "$JS.API.STREAM.UPDATE.EVENTS",
    ] {
        assert!(relay.may_publish(subject), "command-api needs {subject}");
    }
    assert!(!relay.may_publish("$JS.API.STREAM.DELETE.EVENTS"));

    // Each service connects as its own user, the password from .env or the Secret.
    let compose = &yaml_documents("docker-compose.yml")[0];
    let example = std::fs::read_to_string(root().join(".env.example")).unwrap();
    for u in &users {
        let variable = nats_password_variable(&u.name);
        assert_eq!(
            compose["services"]["nats"]["environment"][variable.as_str()].as_str(),
            Some(format!("${{{variable}:?set it in .env}}").as_str()),
            "compose hands {variable} to nats-server"
        );
        assert!(
            example.contains(&format!("{variable}=")),
            ".env.example lacks {variable}"
        );
    }
    let objects = kustomized_objects();
    for (name, ..) in SERVICES {
        let variable = nats_password_variable(name);
        assert_eq!(
            compose["services"][name]["environment"]["NATS_URL"].as_str(),
            Some(format!("nats://{name}:${{{variable}:?set it in .env}}@nats:4222").as_str()),
            "{name} connects as its own NATS user"
        );
        let deployment = objects
            .iter()
            .find(|o| {
                o["kind"].as_str() == Some("Deployment")
                    && o["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no Deployment {name}"));
        let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .unwrap();
        let nats_url = env
            .iter()
            .find(|e| e["name"].as_str() == Some("NATS_URL"))
            .unwrap_or_else(|| panic!("{name} sets no NATS_URL"));
        assert_eq!(
            nats_url["valueFrom"]["secretKeyRef"]["key"].as_str(),
            Some(format!("nats-url-{name}").as_str()),
            "{name}'s NATS_URL (with its password) comes from the Secret"
        );
    }
    for config in objects
        .iter()
        .filter(|o| o["kind"].as_str() == Some("ConfigMap"))
    {
        assert!(
            config["data"]["NATS_URL"].is_null(),
            "a shared NATS_URL in the ConfigMap would be one user for all"
        );
    }
}
