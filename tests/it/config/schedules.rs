//! Provider schedules in Backstage's forms.

use super::*;

#[test]
fn schedules_accept_the_backstage_forms() {
    let default_timeout = minutes(15);
    let cases = [
        (
            "",
            Schedule {
                frequency: Frequency::Every(minutes(30)),
                timeout: default_timeout,
                initial_delay: None,
            },
        ),
        (
            "schedule: {}",
            Schedule {
                frequency: Frequency::Every(minutes(30)),
                timeout: default_timeout,
                initial_delay: None,
            },
        ),
        (
            "schedule: {frequency: {minutes: 5}}",
            Schedule {
                frequency: Frequency::Every(minutes(5)),
                timeout: default_timeout,
                initial_delay: None,
            },
        ),
        (
            "schedule: {frequency: PT10M, timeout: PT3M}",
            Schedule {
                frequency: Frequency::Every(minutes(10)),
                timeout: minutes(3),
                initial_delay: None,
            },
        ),
        (
            "schedule: {frequency: {cron: '*/30 * * * *'}, timeout: {minutes: 10}}",
            Schedule {
                frequency: Frequency::Cron("*/30 * * * *".into()),
                timeout: minutes(10),
                initial_delay: None,
            },
        ),
        (
            "schedule: {frequency: {trigger: manual}}",
            Schedule {
                frequency: Frequency::Manual,
                timeout: default_timeout,
                initial_delay: None,
            },
        ),
        (
            "schedule: {frequency: {hours: 1, minutes: 30}, initialDelay: {seconds: 30}}",
            Schedule {
                frequency: Frequency::Every(minutes(90)),
                timeout: default_timeout,
                initial_delay: Some(Duration::from_secs(30)),
            },
        ),
        (
            "schedule: {initialDelay: PT1M, scope: global}",
            Schedule {
                frequency: Frequency::Every(minutes(30)),
                timeout: default_timeout,
                initial_delay: Some(minutes(1)),
            },
        ),
    ];
    for (fields, expected) in cases {
        let (_ws, _file, loaded) = load_ok(&with_provider(fields), &[]);
        assert_eq!(
            main_provider(&loaded).shared.schedule,
            expected,
            "[{fields}]"
        );
        assert_eq!(loaded.warnings, Vec::<String>::new(), "[{fields}]");
    }
}

#[test]
fn invalid_schedules_are_errors_at_the_schedule_key() {
    let cases = [
        (
            "schedule: {frequency: {cron: 'not a cron'}}",
            "schedule.frequency",
            "cron expression 'not a cron' has 3 fields",
        ),
        (
            "schedule: {frequency: {cron: '99 * * * *'}}",
            "schedule.frequency",
            "invalid cron expression '99 * * * *'",
        ),
        (
            "schedule: {frequency: {trigger: hourly}}",
            "schedule.frequency",
            "the only supported trigger is `manual`",
        ),
        (
            "schedule: {frequency: {minuts: 5}}",
            "schedule.frequency",
            "unknown duration unit `minuts`",
        ),
        (
            "schedule: {frequency: PT0S}",
            "schedule.frequency",
            "must be longer than zero",
        ),
        (
            "schedule: {frequency: every 5 minutes}",
            "schedule.frequency",
            "is not an ISO-8601 duration",
        ),
        (
            "schedule: {timeout: 30 minutes}",
            "schedule.timeout",
            "is not an ISO-8601 duration",
        ),
        (
            "schedule: {timeout: {minutes: 0}}",
            "schedule.timeout",
            "must be longer than zero",
        ),
        (
            "schedule: {initialDelay: soon}",
            "schedule.initialDelay",
            "is not an ISO-8601 duration",
        ),
        ("schedule: PT5M", "schedule", "expected an object"),
    ];
    for (fields, sub, fragment) in cases {
        let (_ws, file, err) = load_err(&with_provider(fields), &[]);
        let message = assert_invalid(fields, &err, &Origin::File(file), &format!("{MAIN}.{sub}"));
        assert_message_contains(fields, &message, fragment);
    }
}
