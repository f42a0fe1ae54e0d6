//! Account settings: PutAccountSetting (for the caller or a given principal),
//! PutAccountSettingDefault (for the whole account), DeleteAccountSetting, ListAccountSettings
//! (explicit or effective settings). A principal's own setting wins over the account default,
//! which wins over ECS's built-in default.

use crate::context::Ctx;
use crate::paginate::page;
use flotilla_controllers::records::{commit, get, list, to_bytes, ACCOUNT_SETTINGS};
use flotilla_model::shapes::{
    DeleteAccountSettingRequest, DeleteAccountSettingResponse, ListAccountSettingsRequest,
    ListAccountSettingsResponse, PutAccountSettingDefaultRequest, PutAccountSettingDefaultResponse,
    PutAccountSettingRequest, PutAccountSettingResponse, Setting, SettingName, SettingType,
};
use flotilla_model::EcsError;
use flotilla_store::Txn;

const DEFAULT_SCOPE: &str = "_account_default";

/// ECS's built-in default for a setting, and the values it accepts.
pub fn builtin(name: SettingName) -> (&'static str, &'static [&'static str]) {
    match name {
        SettingName::ServiceLongArnFormat
        | SettingName::TaskLongArnFormat
        | SettingName::ContainerInstanceLongArnFormat => ("enabled", &["enabled", "disabled"]),
        SettingName::AwsvpcTrunking
        | SettingName::FargateFIPSMode
        | SettingName::FargateEventWindows => ("disabled", &["enabled", "disabled"]),
        SettingName::ContainerInsights => ("disabled", &["enhanced", "enabled", "disabled"]),
        SettingName::TagResourceAuthorization => ("on", &["on", "off"]),
        SettingName::FargateTaskRetirementWaitPeriod => ("7", &["0", "7", "14"]),
        SettingName::GuardDutyActivate => ("off", &["on", "off"]),
        SettingName::DefaultLogDriverMode => ("non-blocking", &["blocking", "non-blocking"]),
    }
}

fn check_value(name: SettingName, value: &str) -> Result<(), EcsError> {
    let (_, allowed) = builtin(name);
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(EcsError::invalid_parameter(format!(
            "Invalid value '{value}' for account setting {name}. Valid values are: {}.",
            allowed.join(", ")
        )))
    }
}

fn key(scope: &str, name: SettingName) -> String {
    format!("{ACCOUNT_SETTINGS}{scope}/{name}")
}

fn account_root(ctx: &Ctx<'_>) -> String {
    format!("arn:aws:iam::{}:root", ctx.arns().account)
}

async fn put(
    ctx: &Ctx<'_>,
    scope: &str,
    setting: &Setting,
    name: SettingName,
) -> Result<(), EcsError> {
    commit(
        ctx.store(),
        Txn::new().put(key(scope, name), to_bytes(setting)?),
    )
    .await?;
    Ok(())
}

/// The effective setting for a principal.
async fn effective(ctx: &Ctx<'_>, principal: &str, name: SettingName) -> Result<Setting, EcsError> {
    if let Some((s, _)) = get::<Setting>(ctx.store(), &key(principal, name)).await? {
        return Ok(s);
    }
    if let Some((mut s, _)) = get::<Setting>(ctx.store(), &key(DEFAULT_SCOPE, name)).await? {
        s.principal_arn = Some(principal.to_string());
        return Ok(s);
    }
    Ok(Setting {
        name: Some(name),
        value: Some(builtin(name).0.to_string()),
        principal_arn: Some(principal.to_string()),
        r#type: Some(SettingType::AwsManaged),
    })
}

/// PutAccountSetting.
pub async fn put_account_setting(
    ctx: &Ctx<'_>,
    req: PutAccountSettingRequest,
) -> Result<PutAccountSettingResponse, EcsError> {
    check_value(req.name, &req.value)?;
    let principal = req
        .principal_arn
        .clone()
        .unwrap_or_else(|| ctx.caller.principal_arn.clone());
    let setting = Setting {
        name: Some(req.name),
        value: Some(req.value.clone()),
        principal_arn: Some(principal.clone()),
        r#type: Some(SettingType::User),
    };
    put(ctx, &principal, &setting, req.name).await?;
    Ok(PutAccountSettingResponse {
        setting: Some(setting),
    })
}

/// PutAccountSettingDefault.
pub async fn put_account_setting_default(
    ctx: &Ctx<'_>,
    req: PutAccountSettingDefaultRequest,
) -> Result<PutAccountSettingDefaultResponse, EcsError> {
    check_value(req.name, &req.value)?;
    let setting = Setting {
        name: Some(req.name),
        value: Some(req.value.clone()),
        principal_arn: Some(account_root(ctx)),
        r#type: Some(SettingType::User),
    };
    put(ctx, DEFAULT_SCOPE, &setting, req.name).await?;
    Ok(PutAccountSettingDefaultResponse {
        setting: Some(setting),
    })
}

/// DeleteAccountSetting.
pub async fn delete_account_setting(
    ctx: &Ctx<'_>,
    req: DeleteAccountSettingRequest,
) -> Result<DeleteAccountSettingResponse, EcsError> {
    let principal = req
        .principal_arn
        .clone()
        .unwrap_or_else(|| ctx.caller.principal_arn.clone());
    let k = key(&principal, req.name);
    let old = get::<Setting>(ctx.store(), &k).await?;
    commit(ctx.store(), Txn::new().delete(k)).await?;
    let setting = match old {
        Some((s, _)) => s,
        None => effective(ctx, &principal, req.name).await?,
    };
    Ok(DeleteAccountSettingResponse {
        setting: Some(setting),
    })
}

/// ListAccountSettings.
pub async fn list_account_settings(
    ctx: &Ctx<'_>,
    req: ListAccountSettingsRequest,
) -> Result<ListAccountSettingsResponse, EcsError> {
    if req.value.is_some() && req.name.is_none() {
        return Err(EcsError::invalid_parameter(
            "value can only be specified together with name.",
        ));
    }
    let principal = req
        .principal_arn
        .clone()
        .unwrap_or_else(|| ctx.caller.principal_arn.clone());
    let mut settings: Vec<Setting> = Vec::new();
    if req.effective_settings {
        for raw in SettingName::VALUES {
            if let Some(n) = SettingName::parse(raw) {
                if req.name.is_none_or(|w| w == n) {
                    settings.push(effective(ctx, &principal, n).await?);
                }
            }
        }
    } else {
        for (_, s, _) in
            list::<Setting>(ctx.store(), &format!("{ACCOUNT_SETTINGS}{principal}/")).await?
        {
            if req.name.is_none_or(|w| Some(w) == s.name) {
                settings.push(s);
            }
        }
    }
    settings.retain(|s| req.value.is_none() || s.value == req.value);
    let items: Vec<(String, Setting)> = settings
        .into_iter()
        .map(|s| (s.name.map(|n| n.to_string()).unwrap_or_default(), s))
        .collect();
    let (settings, next_token) = page(
        items,
        req.next_token.as_deref(),
        (req.max_results != 0).then_some(req.max_results),
        10,
        10,
    )?;
    Ok(ListAccountSettingsResponse {
        settings: Some(settings),
        next_token,
    })
}
