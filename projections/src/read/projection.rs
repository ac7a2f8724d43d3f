//! The projections: their names, the tables each owns, and the advisory-lock key that elects
//! the one process applying it.

use std::fmt;

/// A read model built from the log, with its own checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Projection {
    /// The tenant tree, users and grants (user access).
    Tenants,
    /// Locations and their availability.
    Locations,
    /// Resource providers, availability, authorizations, locations; concrete providers.
    ResourceProviders,
    /// Every stream's governing tenant and lifecycle, and the metadata of every resource.
    Resources,
}

impl Projection {
    pub const ALL: [Projection; 4] = [
        Self::Tenants,
        Self::Locations,
        Self::ResourceProviders,
        Self::Resources,
    ];

    /// The name used on the command line and in `read.checkpoints`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tenants => "tenants",
            Self::Locations => "locations",
            Self::ResourceProviders => "resource_providers",
            Self::Resources => "resources",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name || p.name().replace('_', "-") == name)
    }

    /// The tables it owns (in schema `read`).
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Self::Tenants => &["tenants", "users", "grants"],
            Self::Locations => &["locations", "location_availability"],
            Self::ResourceProviders => &[
                "resource_providers",
                "rp_availability",
                "rp_authorizations",
                "rp_locations",
                "rp_identities",
                "providers",
            ],
            Self::Resources => &["resources", "annotations", "statuses", "finalizers"],
        }
    }

    /// The session-level advisory lock that makes one process at a time apply it.
    pub(crate) fn lock_key(self) -> i64 {
        // "plnread" + the projection's index: far from the migration lock's key.
        0x706c_6e72_6561_6400 + self as i64
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of projections (applied together when their checkpoints agree).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ProjectionSet(u8);

impl ProjectionSet {
    pub fn all() -> Self {
        Self::ALL_BITS
    }

    const ALL_BITS: Self = Self(0b1111);

    pub fn only(p: Projection) -> Self {
        Self(1 << p as u8)
    }

    pub fn with(self, p: Projection) -> Self {
        Self(self.0 | 1 << p as u8)
    }

    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub fn contains(self, p: Projection) -> bool {
        self.0 & (1 << p as u8) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Projection> {
        Projection::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Projection::name).collect()
    }
}

impl FromIterator<Projection> for ProjectionSet {
    fn from_iter<I: IntoIterator<Item = Projection>>(iter: I) -> Self {
        iter.into_iter().fold(Self::default(), Self::with)
    }
}
