/**
 * A catalog module for Backstage's new backend system that ingests the
 * entities of one or more bitbucket-catalogd daemons through their change
 * feed. Configure it under `catalog.providers.catalogd`, as one provider
 * (`baseUrl`, id `default`) or a map of ids (`<id>.baseUrl`); see
 * `config.d.ts`.
 */
import {
  coreServices,
  createBackendModule,
} from '@backstage/backend-plugin-api';
import { catalogProcessingExtensionPoint } from '@backstage/plugin-catalog-node';
import { CONFIG_ROOT, readProviderConfigs } from './config';
import { CatalogdEntityProvider } from './provider';

export { CatalogdEntityProvider } from './provider';
export { readFeed, FeedGoneError } from './feed';
export { readProviderConfigs, CatalogdConfigError } from './config';
export type { CatalogdProviderConfig } from './config';

export const catalogModuleCatalogd = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'catalogd',
  register(env) {
    env.registerInit({
      deps: {
        catalog: catalogProcessingExtensionPoint,
        config: coreServices.rootConfig,
        logger: coreServices.logger,
        lifecycle: coreServices.lifecycle,
      },
      async init({ catalog, config, logger, lifecycle }) {
        // Throws on a mistake, naming the key: Backstage's start-up stops with that message.
        const providers = readProviderConfigs(config);
        if (providers.length === 0) {
          logger.warn(`${CONFIG_ROOT} is not configured; no daemon is followed`);
          return;
        }
        for (const entry of providers) {
          const provider = new CatalogdEntityProvider({ ...entry, logger });
          catalog.addEntityProvider(provider);
          lifecycle.addShutdownHook(() => provider.stop());
        }
      },
    });
  },
});

export default catalogModuleCatalogd;
