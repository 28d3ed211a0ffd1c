//! `kubectl roster org show|edit` and `leadership`: the organization's profile and who leads it.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use kube::ResourceExt;
use kube::api::{Api, Patch};
use serde::Serialize;
use serde_json::{Map, Value};

use super::output::{Names, emit, kind};
use super::session::Session;
use super::status::organization;
use crate::api::{Leader, Organization, Profile};

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Show the organization's display name and profile.
    Show,
    /// Change the display name or profile fields: only the flags given change (an empty value
    /// clears a field). Admins and owners may.
    Edit(EditArgs),
}

#[derive(clap::Args, Debug, Default)]
pub struct EditArgs {
    /// How the organization appears everywhere.
    #[arg(long)]
    display_name: Option<String>,
    /// Home page: an http:// or https:// URL.
    #[arg(long)]
    website: Option<String>,
    /// Where the organization is, for example "Berlin, Germany".
    #[arg(long)]
    location: Option<String>,
    /// Industry or field, for example "Education".
    #[arg(long)]
    sector: Option<String>,
    /// The university, for academic organizations.
    #[arg(long)]
    university: Option<String>,
    /// A few sentences about the organization.
    #[arg(long)]
    description: Option<String>,
}

/// `kubectl roster org ...`.
pub(super) async fn run(s: &Session, command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::Show => show(s).await,
        OrgCommand::Edit(args) => edit(s, args).await,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrgView {
    namespace: String,
    organization: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    profile: Profile,
    data_region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    billing_admin: Option<String>,
}

fn org_view(s: &Session, org: &Organization) -> OrgView {
    OrgView {
        namespace: s.namespace.clone(),
        organization: org.name_any(),
        display_name: org.spec.display_name.clone(),
        profile: org.spec.profile.clone().unwrap_or_default(),
        data_region: serde_json::to_value(org.spec.data_region)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        billing_admin: org.spec.billing_admin.clone(),
    }
}

fn org_text(view: &OrgView) -> String {
    let p = &view.profile;
    let rows = [
        ("Organization", Some(&view.organization)),
        ("Display name", view.display_name.as_ref()),
        ("Website", p.website.as_ref()),
        ("Location", p.location.as_ref()),
        ("Sector", p.sector.as_ref()),
        ("University", p.university.as_ref()),
        ("Description", p.description.as_ref()),
        ("Data region", Some(&view.data_region)),
        ("Billing admin", view.billing_admin.as_ref()),
    ];
    rows.iter()
        .map(|(label, value)| {
            format!(
                "{:<16}{}\n",
                format!("{label}:"),
                value.map_or("-", |v| v.as_str())
            )
        })
        .collect()
}

async fn show(s: &Session) -> anyhow::Result<()> {
    let org = organization(s).await?;
    let view = org_view(s, &org);
    emit(
        s,
        &view,
        Names::one(kind::ORGANIZATION, &view.organization),
        || org_text(&view),
    )
}

/// The merge patch of what was given, and the fields it names: an empty value becomes null,
/// which removes the field.
fn edit_patch(args: &EditArgs) -> (Value, Vec<&'static str>) {
    let value = |v: &String| {
        if v.is_empty() {
            Value::Null
        } else {
            Value::String(v.clone())
        }
    };
    let mut spec = Map::new();
    let mut changed = Vec::new();
    if let Some(v) = &args.display_name {
        spec.insert("displayName".into(), value(v));
        changed.push("displayName");
    }
    let mut profile = Map::new();
    for (field, given) in [
        ("website", &args.website),
        ("location", &args.location),
        ("sector", &args.sector),
        ("university", &args.university),
        ("description", &args.description),
    ] {
        if let Some(v) = given {
            profile.insert(field.into(), value(v));
            changed.push(field);
        }
    }
    if !profile.is_empty() {
        spec.insert("profile".into(), Value::Object(profile));
    }
    (serde_json::json!({ "spec": spec }), changed)
}

/// `org edit`: a merge patch of only the given fields, as the caller; admins and owners may
/// change the display name and profile, and roster's webhook refuses anyone else.
async fn edit(s: &Session, args: EditArgs) -> anyhow::Result<()> {
    let (patch, changed) = edit_patch(&args);
    if changed.is_empty() {
        bail!(
            "nothing to change: give --display-name, --website, --location, --sector, --university or --description"
        );
    }
    let name = organization(s).await?.name_any();
    let org = Api::<Organization>::namespaced(s.client.clone(), &s.namespace)
        .patch(&name, &s.patch_params(), &Patch::Merge(patch))
        .await
        .with_context(|| format!("edit Organization {name} in {}", s.namespace))?;
    let view = org_view(s, &org);
    emit(s, &view, Names::one(kind::ORGANIZATION, &name), || {
        format!(
            "organization/{name} edited{} ({})\n\n{}",
            s.dry(),
            changed.join(", "),
            org_text(&view)
        )
    })
}

/// `kubectl roster leadership`: the owners and admins in force (status.leadership), so that
/// members see who to contact.
pub(super) async fn leadership(s: &Session) -> anyhow::Result<()> {
    let org = organization(s).await?;
    let leaders: Vec<Leader> = org.status.map(|st| st.leadership).unwrap_or_default();
    emit(s, &leaders, Names::NotObjects, || {
        if leaders.is_empty() {
            return format!(
                "No owners or admins in force in {} (yet: roster reports them once it has reconciled the organization).\n",
                s.namespace
            );
        }
        let rows: Vec<Vec<String>> = leaders
            .iter()
            .map(|l| vec![l.user.clone(), l.role.clone()])
            .collect();
        s.table(&["USER", "ROLE"], &rows)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_patch_only_what_was_given() {
        let args = EditArgs {
            display_name: Some("Lovelace Lab".into()),
            website: Some(String::new()),
            sector: Some("Education".into()),
            ..EditArgs::default()
        };
        let (patch, changed) = edit_patch(&args);
        assert_eq!(
            patch,
            serde_json::json!({ "spec": {
                "displayName": "Lovelace Lab",
                "profile": { "website": null, "sector": "Education" }
            }})
        );
        assert_eq!(changed, ["displayName", "website", "sector"]);
        let (patch, changed) = edit_patch(&EditArgs::default());
        assert_eq!(patch, serde_json::json!({ "spec": {} }));
        assert!(changed.is_empty());
    }
}
