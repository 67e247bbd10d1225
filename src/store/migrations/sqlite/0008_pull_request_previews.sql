-- Open pull requests' previews (what each merge would change), kept until
-- the pull request is merged, declined or deleted, so a restart keeps them
-- and every replica serves the leader's. Project and repository are
-- lowercase (compared without case, as Bitbucket does); `summary` is what
-- the status page lists, `body` the preview as served (JSON).
CREATE TABLE pull_request_previews (
    provider TEXT NOT NULL,
    project TEXT NOT NULL,
    repository TEXT NOT NULL,
    pull_request BIGINT NOT NULL,
    checked_at_ms BIGINT NOT NULL,
    summary TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (provider, project, repository, pull_request)
);
CREATE INDEX pull_request_previews_by_age ON pull_request_previews (checked_at_ms);
