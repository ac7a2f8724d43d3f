//! Actions as Infratographer's permissions-api names them (`<resource>_<verb>`:
//! `loadbalancer_create`, `tenant_get`), and which principal holds which: people by their
//! role, resource providers by their scopes (`<resource>:<verb>` or `<resource>:*`). What
//! `GET|POST /api/v1/allow` answers (docs/security.md, "Actions").

use crate::values::{Role, Scope};

/// A checked action: its resource type and verb, each a scope word, so that it maps to the
/// scope `<resource>:<verb>` exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    scope: Scope,
}

/// Why an action is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an action (expected `<resource>_<verb>`, lowercase: `loadbalancer_create`)")]
pub struct ActionError(pub String);

/// Verbs a viewer holds on every resource type of the subtrees it may read.
const VIEWER_VERBS: [&str; 2] = ["get", "list"];
/// Verbs an editor holds besides a viewer's.
const EDITOR_VERBS: [&str; 3] = ["create", "update", "delete"];

impl Action {
    /// `<resource>_<verb>`: the verb is what follows the last `_` (resource types may hold
    /// `_`, as `iam_rolebinding_create` does), neither part empty nor `*`.
    pub fn parse(s: &str) -> Result<Self, ActionError> {
        let bad = || ActionError(s.chars().take(64).collect());
        let (resource, verb) = s.rsplit_once('_').ok_or_else(bad)?;
        if verb.is_empty() || verb == "*" || verb.contains('-') {
            return Err(bad());
        }
        let scope = Scope::parse(&format!("{resource}:{verb}")).map_err(|_| bad())?;
        Ok(Self { scope })
    }

    pub fn resource(&self) -> &str {
        self.scope.resource()
    }

    pub fn verb(&self) -> &str {
        self.scope.action()
    }

    /// The scope a resource provider must hold (`x:*` covers it too).
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Whether a person with `role` (in effect on the resource's tenant) may do it: viewers
    /// `get` and `list`, editors also `create`, `update` and `delete`, admins any verb, on
    /// every resource type.
    pub fn allowed_to_role(&self, role: Role) -> bool {
        let verb = self.verb();
        match role {
            Role::Admin => true,
            Role::Editor => VIEWER_VERBS.contains(&verb) || EDITOR_VERBS.contains(&verb),
            Role::Viewer => VIEWER_VERBS.contains(&verb),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_split_at_the_last_underscore() {
        let a = Action::parse("iam_rolebinding_create").unwrap();
        assert_eq!((a.resource(), a.verb()), ("iam_rolebinding", "create"));
        assert_eq!(a.scope().as_str(), "iam_rolebinding:create");
        for bad in [
            "",
            "loadbalancer",
            "_create",
            "loadbalancer_",
            "LoadBalancer_create",
            "loadbalancer_*",
            "loadbalancer:create",
            "load balancer_get",
        ] {
            assert!(Action::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_hold_verbs_on_every_resource_type() {
        let get = Action::parse("loadbalancer_get").unwrap();
        let create = Action::parse("tenant_create").unwrap();
        let custom = Action::parse("loadbalancer_failover").unwrap();
        assert!(get.allowed_to_role(Role::Viewer));
        assert!(!create.allowed_to_role(Role::Viewer));
        assert!(create.allowed_to_role(Role::Editor));
        assert!(!custom.allowed_to_role(Role::Editor));
        assert!(custom.allowed_to_role(Role::Admin));
    }
}
