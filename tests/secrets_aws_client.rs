//! The `aws` secrets back end against a real local Secrets Manager (moto): what it reads,
//! how a rotation shows, and how each failure is told apart.

mod common;

use std::collections::BTreeMap;

use common::moto::Moto;
use pincer_secrets::BackendError;
use pincer_secrets::aws::Aws;

/// Fake keys, region us-east-1 and moto's URL; every other AWS variable of the process
/// hidden (an empty value counts as unset), HOME at an empty directory.
fn env(moto: &Moto, home: &common::TempDir) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    ]
    .into_iter()
    .map(|k| (k.to_string(), String::new()))
    .collect();
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".to_string()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string(),
        ),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", moto.url()),
        ("HOME", home.path().display().to_string()),
    ] {
        env.insert(k.to_string(), v);
    }
    env
}

#[tokio::test]
async fn reads_rotations_keys_and_failures_from_secrets_manager() {
    let mut moto = Moto::start();
    let home = common::TempDir::new();
    let aws = Aws::new(None, None, &env(&moto, &home)).expect("client");
    assert_eq!(aws.region(), "us-east-1");
    assert_eq!(aws.endpoint(), format!("{}/", moto.url()));
    let http = reqwest::Client::new();

    // A plain secret: its value and VersionId.
    let first = moto.create_secret("pincer/openai", "sk-first");
    let got = aws.get(&http, "pincer/openai").await.expect("get");
    assert_eq!(
        (got.value.as_str(), got.version.as_str()),
        ("sk-first", first.as_str())
    );

    // A rotation made elsewhere shows as a new version.
    let second = moto.put_secret("pincer/openai", "sk-second");
    assert_ne!(second, first);
    let got = aws.get(&http, "pincer/openai").await.expect("get rotated");
    assert_eq!(
        (got.value.as_str(), got.version.as_str()),
        ("sk-second", second.as_str())
    );

    // Our own put: a new version of an existing secret, and a secret that did not exist.
    let third = aws
        .put(&http, "pincer/openai", "sk-third")
        .await
        .expect("put");
    assert!(third != second && !third.is_empty());
    assert_eq!(
        moto.get_secret("pincer/openai"),
        ("sk-third".to_string(), third.clone())
    );
    let created = aws
        .put(&http, "pincer/new", "fresh")
        .await
        .expect("put creates");
    let got = aws.get(&http, "pincer/new").await.expect("get created");
    assert_eq!(
        (got.value.as_str(), got.version.as_str()),
        ("fresh", created.as_str())
    );

    // `name#key` reads one key of a JSON SecretString; non-strings come as JSON text.
    let db = moto.create_secret("pincer/db", r#"{"password":"pw-1","port":5432}"#);
    let got = aws.get(&http, "pincer/db#password").await.expect("key");
    assert_eq!(
        (got.value.as_str(), got.version.as_str()),
        ("pw-1", db.as_str())
    );
    assert_eq!(
        aws.get(&http, "pincer/db#port").await.expect("port").value,
        "5432"
    );
    let missing_key = aws.get(&http, "pincer/db#user").await.unwrap_err();
    assert!(
        matches!(&missing_key, BackendError::NotFound(m) if m.contains("pincer/db") && m.contains("user")),
        "{missing_key:?}"
    );
    let not_object = aws.get(&http, "pincer/openai#key").await.unwrap_err();
    assert!(
        matches!(not_object, BackendError::Invalid(_)),
        "{not_object:?}"
    );
    assert!(!not_object.to_string().contains("sk-third"), "{not_object}");

    // A binary-only secret is refused by name.
    moto.create_binary_secret("pincer/cert", "AAEC");
    let binary = aws.get(&http, "pincer/cert").await.unwrap_err();
    assert!(
        matches!(&binary, BackendError::Invalid(m) if m.contains("pincer/cert") && m.contains("SecretBinary")),
        "{binary:?}"
    );

    // No such secret.
    let absent = aws.get(&http, "pincer/absent").await.unwrap_err();
    assert_eq!(
        absent,
        BackendError::NotFound("Secrets Manager has no secret `pincer/absent`".into())
    );
    assert!(!absent.is_outage());

    // Secrets Manager gone: an outage, not a missing secret.
    moto.stop();
    let down = aws.get(&http, "pincer/openai").await.unwrap_err();
    assert!(
        matches!(down, BackendError::Unavailable(_)) && down.is_outage(),
        "{down:?}"
    );
}
