use super::*;

#[test]
fn prune_drops_raw_results_past_retention_and_rollups_past_their_figures() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("t.redb"), 1 << 20).unwrap();
    let day = 86_400_000i64;
    let now = 100 * day;
    db.write_blocking(|txn| {
        txn.open_table(MONITORS)?.insert(7, b"x".as_slice())?;
        let mut r = txn.open_table(RESULTS)?;
        let mut u = txn.open_table(ROLLUPS)?;
        for age in [0, 6, 8, 40, 95] {
            r.insert((7, now - age * day), b"r".as_slice())?;
            for code in 0..3u8 {
                u.insert((7, code, now - age * day), b"b".as_slice())?;
            }
        }
        Ok::<_, StoreError>(())
    })
    .unwrap();
    let n = db.write_blocking(|txn| prune(txn, now, 7 * day)).unwrap();
    let left = db
        .read_blocking(|txn| {
            let r: Vec<i64> = txn
                .open_table(RESULTS)?
                .iter()?
                .map(|e| e.map(|(k, _)| (now - k.value().1) / day))
                .collect::<Result<_, _>>()?;
            let u: Vec<(u8, i64)> = txn
                .open_table(ROLLUPS)?
                .iter()?
                .map(|e| e.map(|(k, _)| (k.value().1, (now - k.value().2) / day)))
                .collect::<Result<_, _>>()?;
            Ok::<_, StoreError>((r, u))
        })
        .unwrap();
    // Raw: 7 days. Minutes: 25 h, hours: 31 d, days: 92 d.
    let mut raw = left.0.clone();
    raw.sort();
    assert_eq!(raw, vec![0, 6]);
    let mut rollups = left.1.clone();
    rollups.sort();
    assert_eq!(
        rollups,
        vec![
            (0, 0),
            (1, 0),
            (1, 6),
            (1, 8),
            (2, 0),
            (2, 6),
            (2, 8),
            (2, 40)
        ]
    );
    assert_eq!(n, 3 + 4 + 2 + 1);
}
