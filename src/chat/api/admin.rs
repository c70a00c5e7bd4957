//! Admins' routes: chat sites, their keys and identity secrets.

use super::*;

pub(super) async fn list_sites(State(s): State<AppState>, _: Admin) -> ApiResult<ApiJson<Value>> {
    let base = s.config.server.base_url();
    let list: Vec<Value> = s
        .chat
        .sites()
        .await?
        .iter()
        .map(|x| site_view(x, &base))
        .collect();
    Ok(ApiJson(json!({ "sites": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SiteBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    require_identity: Option<bool>,
    #[serde(default)]
    hours: Option<Value>,
    #[serde(default)]
    time_zone: Option<String>,
}

pub(super) async fn create_site(
    State(s): State<AppState>,
    _: Admin,
    ApiJson(b): ApiJson<SiteBody>,
) -> ApiResult<ApiJson<Value>> {
    let hours = match &b.hours {
        Some(h) => hours::parse_hours(h).map_err(ApiError::bad_request)?,
        None => Vec::new(),
    };
    let site = s
        .chat
        .create_site(NewSite {
            name: b.name.unwrap_or_default(),
            require_identity: b.require_identity.unwrap_or(false),
            hours,
            time_zone: b.time_zone.unwrap_or_else(|| "UTC".into()),
        })
        .await?;
    Ok(ApiJson(
        json!({ "site": site_view(&site, &s.config.server.base_url()) }),
    ))
}

pub(super) async fn update_site(
    State(s): State<AppState>,
    _: Admin,
    Path(id): Path<u64>,
    ApiJson(b): ApiJson<SiteBody>,
) -> ApiResult<ApiJson<Value>> {
    let hours = match &b.hours {
        Some(h) => Some(hours::parse_hours(h).map_err(ApiError::bad_request)?),
        None => None,
    };
    if let Some(tz) = &b.time_zone
        && hours::time_zone(tz).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "unknown time zone {tz:?}; use an IANA name like Europe/Berlin"
        )));
    }
    let site = s
        .chat
        .update_site(id, move |site| {
            if let Some(n) = b.name.filter(|n| !n.trim().is_empty()) {
                site.name = n;
            }
            if let Some(r) = b.require_identity {
                site.require_identity = r;
            }
            if let Some(h) = hours {
                site.hours = h;
            }
            if let Some(tz) = b.time_zone {
                site.time_zone = tz;
            }
            Ok(())
        })
        .await?;
    Ok(ApiJson(
        json!({ "site": site_view(&site, &s.config.server.base_url()) }),
    ))
}

pub(super) async fn rotate_secret(
    State(s): State<AppState>,
    _: Admin,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let site = s
        .chat
        .update_site(id, |site| {
            site.identity_secret = crate::accounts::random_hex(32);
            Ok(())
        })
        .await?;
    Ok(ApiJson(
        json!({ "site": site_view(&site, &s.config.server.base_url()) }),
    ))
}
