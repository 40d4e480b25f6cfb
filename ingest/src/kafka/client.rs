//! The one place librdkafka clients are configured: the group's consumer,
//! the probe that reads the source outside the group, the dead-letter
//! producer and the admin client that reads the topics' retention. Each
//! takes the operator's `kafka.librdkafka` options that apply to its role,
//! then the settings vigie's delivery guarantee depends on, which the
//! operator cannot override (`config::MANAGED`).

use rdkafka::config::ClientConfig;

use super::config::KafkaConfig;

/// What a client is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The group member that reads and commits.
    Consumer,
    /// Reads watermarks and the record at a checkpoint, outside the group.
    Probe,
    /// Writes refused records to the dead-letter topic.
    DeadLetter,
    /// Describes the source topics (their retention).
    Admin,
}

/// Whether an operator's librdkafka option applies to a client of `role`.
fn applies(role: Role, key: &str) -> bool {
    match role {
        Role::Consumer | Role::Probe => true,
        // Consumer-side options would only draw warnings from a producer.
        Role::DeadLetter => {
            !key.starts_with("auto.") && !key.starts_with("fetch.") && key != "statistics.interval.ms"
        }
        // Only how to reach and authenticate to the brokers.
        Role::Admin => key.starts_with("security.") || key.starts_with("sasl.") || key.starts_with("ssl."),
    }
}

/// The librdkafka configuration of a client of `role`.
pub fn client_config(kafka: &KafkaConfig, role: Role) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in kafka.librdkafka.iter().filter(|(k, _)| applies(role, k)) {
        c.set(k, v);
    }
    c.set("bootstrap.servers", &kafka.brokers);
    match role {
        Role::Consumer | Role::Probe => {
            c.set("group.id", &kafka.group_id)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("isolation.level", "read_committed");
            // Where a partition starts is decided at assignment; a
            // partition without any durable point starts at its earliest
            // record.
            c.set("auto.offset.reset", "earliest");
            if role == Role::Probe {
                c.set("group.id", format!("{}-probe", kafka.group_id)).set("statistics.interval.ms", "0");
            } else if !kafka.librdkafka.contains_key("statistics.interval.ms") {
                c.set("statistics.interval.ms", "5000");
            }
        }
        Role::DeadLetter => {
            c.set("acks", "all");
        }
        Role::Admin => {}
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(options: &[(&str, &str)]) -> KafkaConfig {
        let mut t: toml::Table =
            toml::from_str("brokers = \"127.0.0.1:9092\"\ntopics = [\"ev\"]\ngroup_id = \"g\"\n").unwrap();
        let lib: toml::Table =
            options.iter().map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string()))).collect();
        t.insert("librdkafka".into(), toml::Value::Table(lib));
        t.try_into().unwrap()
    }

    #[test]
    fn each_role_takes_the_options_that_apply_to_it_and_keeps_the_managed_ones() {
        let k = kafka(&[
            ("sasl.username", "u"),
            ("fetch.min.bytes", "10"),
            ("statistics.interval.ms", "1000"),
            ("client.id", "c"),
        ]);
        let get = |r: Role, key: &str| client_config(&k, r).get(key).map(str::to_string);
        // The consumer takes everything, and the guarantee's settings.
        assert_eq!(get(Role::Consumer, "fetch.min.bytes").as_deref(), Some("10"));
        assert_eq!(get(Role::Consumer, "statistics.interval.ms").as_deref(), Some("1000"));
        assert_eq!(get(Role::Consumer, "enable.auto.commit").as_deref(), Some("false"));
        assert_eq!(get(Role::Consumer, "isolation.level").as_deref(), Some("read_committed"));
        assert_eq!(get(Role::Consumer, "group.id").as_deref(), Some("g"));
        // The probe is outside the group and sends no statistics.
        assert_eq!(get(Role::Probe, "group.id").as_deref(), Some("g-probe"));
        assert_eq!(get(Role::Probe, "statistics.interval.ms").as_deref(), Some("0"));
        // The producer: no consumer options, every acknowledgement.
        assert_eq!(get(Role::DeadLetter, "fetch.min.bytes"), None);
        assert_eq!(get(Role::DeadLetter, "statistics.interval.ms"), None);
        assert_eq!(get(Role::DeadLetter, "client.id").as_deref(), Some("c"));
        assert_eq!(get(Role::DeadLetter, "acks").as_deref(), Some("all"));
        // The admin client: only how to reach the brokers.
        assert_eq!(get(Role::Admin, "sasl.username").as_deref(), Some("u"));
        assert_eq!(get(Role::Admin, "client.id"), None);
        for r in [Role::Consumer, Role::Probe, Role::DeadLetter, Role::Admin] {
            assert_eq!(get(r, "bootstrap.servers").as_deref(), Some("127.0.0.1:9092"));
        }
        // Without the operator's statistics interval, the consumer's own.
        let plain = kafka(&[]);
        assert_eq!(client_config(&plain, Role::Consumer).get("statistics.interval.ms"), Some("5000"));
    }
}
