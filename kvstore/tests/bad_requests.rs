//! Rejected requests: malformed JSON, unknown fields, oversize values and bad ranges get a 4xx
//! with a clear `ErrorBody`, and change nothing.

mod common;

use common::Member;
use kvclient::proto::*;

struct Raw {
    http: reqwest::Client,
    url: String,
}

impl Raw {
    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn error(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, ErrorBody) {
        let (status, text) = self.post(path, body).await;
        let body: ErrorBody = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: body {text:?} is not an ErrorBody: {e}"));
        (status, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_get_error_bodies_and_change_nothing() {
    let m = Member::start().await;
    let raw = Raw {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        url: m.url.clone(),
    };
    let c = &m.client;
    let rev = c
        .put(&PutRequest {
            key: "k".into(),
            value: "v".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .header
        .revision;

    let cases: Vec<(&str, Vec<u8>, u16, ErrorCode, &str)> = vec![
        (
            "/v3/kv/put",
            b"{not json".to_vec(),
            400,
            ErrorCode::BadRequest,
            "invalid request body",
        ),
        (
            "/v3/kv/put",
            br#"{"key":"k","vaule":"x"}"#.to_vec(),
            400,
            ErrorCode::BadRequest,
            "unknown field `vaule`",
        ),
        (
            "/v3/kv/put",
            br#"{"value":"x"}"#.to_vec(),
            400,
            ErrorCode::BadRequest,
            "missing field `key`",
        ),
        (
            "/v3/kv/put",
            br#"{"key":"","value":"x"}"#.to_vec(),
            400,
            ErrorCode::BadRequest,
            "key is not provided",
        ),
        (
            "/v3/kv/range",
            br#"{"key":"b","range_end":"a"}"#.to_vec(),
            400,
            ErrorCode::BadRequest,
            "range_end",
        ),
        (
            "/v3/kv/range",
            br#"{"key":"k","revision":99}"#.to_vec(),
            400,
            ErrorCode::FutureRevision,
            "future revision",
        ),
        (
            "/v3/kv/deleterange",
            br#"{"key":"a","prefix":true,"range_end":"b"}"#.to_vec(),
            400,
            ErrorCode::BadRequest,
            "prefix",
        ),
        (
            "/v3/kv/txn",
            br#"{"success":[{"put":{"key":"k","value":"1"}},{"put":{"key":"k","value":"2"}}]}"#
                .to_vec(),
            400,
            ErrorCode::BadRequest,
            "duplicate key",
        ),
        (
            "/v3/kv/txn",
            br#"{"compare":[{"key":"k","result":"SAME","target":{"version":1}}]}"#.to_vec(),
            400,
            ErrorCode::BadRequest,
            "unknown variant",
        ),
        (
            "/v3/kv/txn",
            br#"{"success":[{"put":{"key":"k","value":"1","extra":1}}]}"#.to_vec(),
            400,
            ErrorCode::BadRequest,
            "unknown field `extra`",
        ),
        (
            "/v3/maintenance/status",
            br#"{"verbose":true}"#.to_vec(),
            400,
            ErrorCode::BadRequest,
            "unknown field",
        ),
        (
            "/v3/lease/grant",
            br#"{"TTL":-5}"#.to_vec(),
            400,
            ErrorCode::BadRequest,
            "TTL",
        ),
        (
            "/v3/watch",
            br#"{"key":"k","start_revison":3}"#.to_vec(),
            400,
            ErrorCode::BadRequest,
            "unknown field",
        ),
    ];
    for (path, body, status, code, text) in cases {
        let shown = String::from_utf8_lossy(&body).to_string();
        let (s, e) = raw.error(path, body).await;
        assert_eq!((s, e.code), (status, code), "{path} {shown}: {e:?}");
        assert!(
            e.error.contains(text),
            "{path} {shown}: {:?} lacks {text:?}",
            e.error
        );
    }

    // A value one byte over the limit: 413 too_large.
    let big = "x".repeat(MAX_VALUE_BYTES + 1);
    let body = serde_json::to_vec(&PutRequest {
        key: "big".into(),
        value: big,
        ..Default::default()
    })
    .unwrap();
    let (s, e) = raw.error("/v3/kv/put", body).await;
    assert_eq!((s, e.code), (413, ErrorCode::TooLarge), "{e:?}");
    assert!(e.error.contains("exceeds"), "{e:?}");
    // The same inside a txn.
    let txn = TxnRequest {
        success: vec![RequestOp::Put(PutRequest {
            key: "big".into(),
            value: "y".repeat(MAX_VALUE_BYTES + 1),
            ..Default::default()
        })],
        ..Default::default()
    };
    let (s, e) = raw
        .error("/v3/kv/txn", serde_json::to_vec(&txn).unwrap())
        .await;
    assert_eq!((s, e.code), (413, ErrorCode::TooLarge), "{e:?}");
    // A body far past any legal request: 413 as well.
    let (s, e) = raw
        .error("/v3/kv/put", vec![b' '; 16 * MAX_VALUE_BYTES])
        .await;
    assert_eq!((s, e.code), (413, ErrorCode::TooLarge), "{e:?}");
    // A value exactly at the limit is fine (and is the only change below).
    let ok = c
        .put(&PutRequest {
            key: "max".into(),
            value: "z".repeat(MAX_VALUE_BYTES),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ok.header.revision, rev + 1);

    // Unknown endpoints are 404 with an ErrorBody.
    let (s, e) = raw.error("/v3/kv/nope", "{}").await;
    assert_eq!((s, e.code), (404, ErrorCode::BadRequest));

    // Nothing but the two puts above happened.
    let all = c
        .range(&RangeRequest {
            key: "".into(),
            range_end: Some("\0".into()),
            keys_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["k", "max"]);
    assert_eq!(all.header.revision, rev + 1);
    assert_eq!(c.get("k").await.unwrap().0.unwrap().version, 1);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_errors_and_old_reads() {
    let m = Member::start().await;
    let c = &m.client;
    for i in 0..5 {
        c.put(&PutRequest {
            key: "k".into(),
            value: i.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let r = c
        .range(&RangeRequest {
            key: "k".into(),
            revision: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.kvs[0].value, "1");
    assert_eq!(r.header.revision, 5);
    let e = c
        .compact(&CompactionRequest {
            revision: 9,
            physical: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::FutureRevision));
    c.compact(&CompactionRequest {
        revision: 3,
        physical: false,
    })
    .await
    .unwrap();
    let e = c
        .compact(&CompactionRequest {
            revision: 3,
            physical: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Compacted));
    let e = c
        .range(&RangeRequest {
            key: "k".into(),
            revision: 2,
            ..Default::default()
        })
        .await
        .unwrap_err();
    match e {
        kvclient::KvError::Server(body, status) => {
            assert_eq!(
                (status, body.code, body.compact_revision),
                (410, ErrorCode::Compacted, 3)
            );
        }
        other => panic!("{other:?}"),
    }
    let r = c
        .range(&RangeRequest {
            key: "k".into(),
            revision: 3,
            serializable: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.kvs[0].value, "2");
    m.stop().await;
}
