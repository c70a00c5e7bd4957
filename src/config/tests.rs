use std::time::Duration;

use super::*;

#[test]
fn sizes_and_durations_parse() {
    assert_eq!("20 MB".parse::<ByteSize>().unwrap().0, 20_000_000);
    assert_eq!("512KiB".parse::<ByteSize>().unwrap().0, 512 * 1024);
    assert_eq!("100".parse::<ByteSize>().unwrap().0, 100);
    assert!("12 parsecs".parse::<ByteSize>().is_err());
    assert_eq!(
        "30s".parse::<HumanDuration>().unwrap().0,
        Duration::from_secs(30)
    );
    assert_eq!(
        "1h30m".parse::<HumanDuration>().unwrap().0,
        Duration::from_secs(5400)
    );
    assert_eq!(
        "250ms".parse::<HumanDuration>().unwrap().0,
        Duration::from_millis(250)
    );
    assert!("soon".parse::<HumanDuration>().is_err());
    assert!("5".parse::<HumanDuration>().is_err());
    assert_eq!(HumanDuration::secs(72 * 3600).to_string(), "3d");
}

#[test]
fn env_overrides_file_and_cli_overrides_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:9000\"\n[ingest]\nmax_batch = 3\n",
    )
    .unwrap();
    let env = vec![
        (
            "HEARTH_SERVER__LISTEN".to_string(),
            "127.0.0.1:9100".to_string(),
        ),
        ("HEARTH_SMTP__HOST".to_string(), "mail.example".to_string()),
        ("HEARTH_BUS__MAX_DELIVER".to_string(), "3".to_string()),
        ("PATH".to_string(), "/bin".to_string()),
    ];
    let loaded = Config::load(Some(&path), env.clone(), &CliOverrides::default()).unwrap();
    assert_eq!(loaded.config.server.listen.port(), 9100);
    assert_eq!(loaded.config.smtp.host, "mail.example");
    assert_eq!(loaded.config.bus.max_deliver, 3);
    assert_eq!(loaded.config.ingest.max_batch, 3);
    let cli = CliOverrides {
        listen: Some("127.0.0.1:9200".parse().unwrap()),
        ..Default::default()
    };
    let loaded = Config::load(Some(&path), env, &cli).unwrap();
    assert_eq!(loaded.config.server.listen.port(), 9200);
}

#[test]
fn unknown_key_is_named() {
    let err = Config::from_toml("[server]\nlisen = \"127.0.0.1:1\"\n").unwrap_err();
    assert!(err.to_string().contains("lisen"), "{err}");
    let err = Config::load(
        None,
        vec![("HEARTH_SERVER__LISTN".into(), "x".into())],
        &CliOverrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("listn"), "{err}");
}

#[test]
fn secret_file_is_read_and_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "hunter2\n").unwrap();
    let env = vec![(
        "HEARTH_SMTP__PASSWORD_FILE".to_string(),
        secret.display().to_string(),
    )];
    let loaded = Config::load(None, env, &CliOverrides::default()).unwrap();
    assert_eq!(loaded.config.smtp.password.expose(), "hunter2");
    let shown = loaded.config.to_redacted_toml();
    assert!(!shown.contains("hunter2"));
    assert!(shown.contains("<redacted>"));
}

#[test]
fn example_config_loads() {
    let text = include_str!("../../config.toml.example");
    let config = Config::from_toml(text).expect("config.toml.example must load");
    // The example documents the defaults; spot-check that it stays in sync.
    let defaults = Config::default();
    assert_eq!(config.server.listen, defaults.server.listen);
    assert_eq!(
        config.ingest.max_compressed_size,
        defaults.ingest.max_compressed_size
    );
}

#[test]
fn example_documents_every_key() {
    let text = include_str!("../../config.toml.example");
    let uncommented: String = text
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let defaults: toml::Table = toml::from_str(&Config::default().to_redacted_toml()).unwrap();
    for (section, value) in defaults {
        let header = format!("[{section}]");
        assert!(text.contains(&header), "config.toml.example lacks {header}");
        for key in value.as_table().unwrap().keys() {
            assert!(
                uncommented.contains(&format!("\n{key} =")),
                "config.toml.example lacks {section}.{key}"
            );
        }
    }
}
