// A Backstage backend as `backstage-cli new` makes it, reduced to the
// catalog: the module is added with the README's one line. Copied into a
// scratch directory where the packed module was installed by
// tests/it/backstage_module.rs, and started with `--config app-config.yaml`.
const { createBackend } = require('@backstage/backend-defaults');

const backend = createBackend();
backend.add(import('@backstage/plugin-catalog-backend'));
backend.add(import('@bitbucket-catalogd/backstage-plugin-catalog-backend-module-catalogd'));
backend.start();
