//! `catalog.locations` and `catalog.locationSchedule`.

use super::*;

#[test]
fn locations_this_daemon_cannot_read_are_skipped_with_a_warning() {
    let (_ws, _file, loaded) = load_ok(
        &format!(
            "{ONE_SERVER}catalog:
  locations:
    - {{type: url, target: 'https://bitbucket.example.com/projects/P/repos/r/browse/catalog-info.yaml'}}
    - {{type: url, target: 'https://bitbucket.org/acme/repo/src/main/catalog-info.yaml', rules: [{{allow: [Group, User]}}]}}
    - {{type: url, target: 'https://github.com/acme/repo/blob/main/catalog-info.yaml'}}
    - {{type: file, target: ../../examples/entities.yaml}}
    - {{type: url, target: 'https://bitbucket.example.com/projects/P/repos/r/browse/catalog-info.yaml'}}
  locationSchedule: {{frequency: {{hours: 1}}, timeout: PT2M}}
"
        ),
        &[],
    );
    let targets: Vec<&str> = loaded
        .config
        .locations
        .locations
        .iter()
        .map(|l| l.target.as_str())
        .collect();
    assert_eq!(
        targets,
        vec![
            "https://bitbucket.example.com/projects/P/repos/r/browse/catalog-info.yaml",
            "https://bitbucket.org/acme/repo/src/main/catalog-info.yaml"
        ]
    );
    assert_eq!(loaded.warnings.len(), 3, "{:?}", loaded.warnings);
    assert_message_contains("github", &loaded.warnings[0], "catalog.locations[2].target");
    assert_message_contains(
        "github",
        &loaded.warnings[0],
        "host 'github.com' is not a configured Bitbucket integration",
    );
    assert_message_contains("file", &loaded.warnings[1], "catalog.locations[3].type");
    assert_message_contains("twice", &loaded.warnings[2], "catalog.locations[4].target");
    let schedule = &loaded.config.locations.schedule;
    assert_eq!(schedule.frequency, Frequency::Every(minutes(60)));
    assert_eq!(schedule.timeout, minutes(2));
    // A location's own rules allow more kinds from that location only.
    let rules = &loaded.config.catalog.rules;
    let cloud = "https://bitbucket.org/acme/repo/src/main/catalog-info.yaml";
    assert!(rules.is_allowed("Group", None, "url", cloud));
    assert!(!rules.is_allowed("Group", None, "url", targets[0]));
    assert!(rules.is_allowed("Component", None, "url", targets[0]));
}

#[test]
fn the_location_schedule_defaults_to_every_30_minutes() {
    let (_ws, _file, loaded) = load_ok("catalog: {}", &[]);
    assert_eq!(loaded.config.locations.schedule, Schedule::default());
    assert!(loaded.config.locations.locations.is_empty());
    let (_ws, file, err) = load_err("catalog: {locations: [{type: url}]}", &[]);
    assert_invalid(
        "no target",
        &err,
        &Origin::File(file),
        "catalog.locations[0].target",
    );
}
