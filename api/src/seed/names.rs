//! Word lists the seeded platform is named from: names a person trying Plinth by hand can tell
//! apart at a glance (`Freckle Corp / Infrastructure / Internal`), unlike `tenant-4711`.

/// The roots of the seed story (`shared/seed/foundational-resources.txt`) come first.
pub(super) const STORY_ROOTS: &[&str] = &["Sarah Corp", "Nicole Corp", "Freckle Corp"];

pub(super) const COMPANY_FIRST: &[&str] = &[
    "Acme",
    "Blue",
    "Northwind",
    "Granite",
    "Juniper",
    "Copper",
    "Harbor",
    "Summit",
    "Cobalt",
    "Meridian",
    "Willow",
    "Orbit",
    "Falcon",
    "Cedar",
    "Lumen",
    "Atlas",
    "Quartz",
    "Ember",
    "Polar",
    "Vertex",
];

pub(super) const COMPANY_SECOND: &[&str] = &[
    "Systems",
    "Labs",
    "Networks",
    "Industries",
    "Cloud",
    "Logistics",
    "Health",
    "Media",
    "Robotics",
    "Energy",
    "Foods",
    "Analytics",
];

pub(super) const COMPANY_SUFFIX: &[&str] = &["Corp", "Inc", "GmbH", "Ltd", "Group"];

/// Sub-tenants of an ordinary (bushy) part of a tree.
pub(super) const DEPARTMENTS: &[&str] = &[
    "Production",
    "Development",
    "Staging",
    "Infrastructure",
    "Internal",
    "External",
    "Platform",
    "Networking",
    "Storage",
    "Security",
    "Data",
    "Analytics",
    "Research",
    "Operations",
    "Finance",
    "Marketing",
    "Sales",
    "Support",
    "Edge",
    "Compute",
    "Payments",
    "Identity",
    "Mobile",
    "Web",
    "Observability",
    "Billing",
    "Search",
    "Messaging",
];

/// The levels of a deep chain, top down: how organisations nest infrastructure.
pub(super) const CHAIN_LEVELS: &[&str] = &[
    "Division",
    "Region",
    "Zone",
    "Cluster",
    "Environment",
    "Team",
    "Project",
    "Service",
    "Component",
    "Shard",
];

/// The children of a wide fan-out: a reseller's customers, a platform team's projects.
pub(super) const FAN_OUT_KINDS: &[&str] = &["Customer", "Project", "Workspace", "Account"];

pub(super) const LOCATIONS: &[&str] = &[
    "Global",
    "North America Region",
    "South America Region",
    "Europe Region",
    "Asia Region",
    "New York",
    "Los Angeles",
    "São Paulo - Zone 1",
    "São Paulo - Zone 2",
    "London",
    "Paris",
    "Hong Kong",
    "Frankfurt",
    "Tokyo",
    "Sydney",
    "Toronto",
    "Singapore",
    "Amsterdam",
];

/// Resource provider kinds and the scopes each requests.
pub(super) const RESOURCE_PROVIDERS: &[(&str, &[&str])] = &[
    (
        "Load Balancers",
        &["loadbalancer:*", "network:read", "instance:read"],
    ),
    ("Instances", &["instance:*", "network:read", "volume:read"]),
    ("Networks", &["network:*"]),
    ("Block Storage", &["volume:*", "instance:read"]),
    ("DNS", &["dns:*", "network:read"]),
    ("Object Storage", &["bucket:*", "network:read"]),
];

pub(super) const PROVIDERS: &[&str] = &["Foo", "Bar", "Baz", "Qux", "Quux", "Corge"];

pub(super) const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yvonne",
];

pub(super) const ANNOTATION_KEYS: &[(&str, &[&str])] = &[
    (
        "app.example.com/owner",
        &["alice", "bob", "carol", "dave", "erin"],
    ),
    (
        "app.example.com/cost-center",
        &["cc-1001", "cc-1002", "cc-2040", "cc-3300"],
    ),
    (
        "app.example.com/environment",
        &["production", "staging", "development"],
    ),
    ("app.example.com/tier", &["gold", "silver", "bronze"]),
    ("plinth.dev/managed-by", &["terraform", "console", "gitops"]),
];

pub(super) const STATUS_SOURCES: &[&str] = &[
    "health.example.com/probe",
    "deploy.example.com/rollout",
    "billing.example.com/meter",
];

pub(super) const FINALIZERS: &[&str] = &["example.com/protect", "backup.example.com/snapshot"];
