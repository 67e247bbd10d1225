// Backstage's own Bitbucket Server provider, one full refresh against the
// simulator at SIM_HOST / SIM_API: prints {"ms": …, "entities": …}.
// Driven by `cargo bench --bench backstage_side`.
'use strict';

const { ConfigReader } = require('@backstage/config');
const {
  BitbucketServerEntityProvider,
} = require('@backstage/plugin-catalog-backend-module-bitbucket-server');

const host = process.env.SIM_HOST;
const apiBaseUrl = process.env.SIM_API;
const config = new ConfigReader({
  integrations: { bitbucketServer: [{ host, apiBaseUrl }] },
  catalog: {
    providers: {
      // validateLocationsExist: the provider reads each repository's
      // catalog file, as a discovery that serves entities must.
      bitbucketServer: { host, validateLocationsExist: true },
    },
  },
});
const logger = {
  info() {},
  debug() {},
  warn() {},
  error(message) {
    console.error(message);
  },
  child() {
    return logger;
  },
};

async function main() {
  const [provider] = BitbucketServerEntityProvider.fromConfig(config, {
    logger,
    // Never scheduled: the refresh below is the one run.
    schedule: { run: async () => {} },
  });
  let entities = 0;
  await provider.connect({
    applyMutation: async mutation => {
      entities = mutation.entities.length;
    },
    refresh: async () => {},
  });
  const started = process.hrtime.bigint();
  await provider.refresh(logger);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(JSON.stringify({ ms, entities }));
}

main().catch(error => {
  console.error(error);
  process.exit(1);
});
