// Backstage's own verdict on catalog files: each file given as an argument
// is read as Backstage's UrlReaderProcessor does (yaml parseAllDocuments),
// and every document goes through catalog-backend's default entity
// policies and the built-in kind validators of @backstage/catalog-model.
// `--allow=Kind,Kind` is `catalog.rules`' allow list; without it, Backstage's
// default rules (Component, API, Location). Prints {"<file>": {"valid":
// bool, "errors": [..]}}; tests/validate.rs compares it with
// `bitbucket-catalogd validate`.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import {
  EntityPolicies,
  DefaultNamespaceEntityPolicy,
  NoForeignRootFieldsEntityPolicy,
  FieldFormatEntityPolicy,
  SchemaValidEntityPolicy,
  apiEntityV1alpha1Validator,
  componentEntityV1alpha1Validator,
  domainEntityV1alpha1Validator,
  groupEntityV1alpha1Validator,
  locationEntityV1alpha1Validator,
  resourceEntityV1alpha1Validator,
  systemEntityV1alpha1Validator,
  userEntityV1alpha1Validator,
} from '@backstage/catalog-model';

const policy = EntityPolicies.allOf([
  new DefaultNamespaceEntityPolicy(),
  new NoForeignRootFieldsEntityPolicy(),
  new FieldFormatEntityPolicy(),
  new SchemaValidEntityPolicy(),
]);
const kinds = [
  apiEntityV1alpha1Validator,
  componentEntityV1alpha1Validator,
  domainEntityV1alpha1Validator,
  groupEntityV1alpha1Validator,
  locationEntityV1alpha1Validator,
  resourceEntityV1alpha1Validator,
  systemEntityV1alpha1Validator,
  userEntityV1alpha1Validator,
];

const args = process.argv.slice(2);
const allowArg = args.find(a => a.startsWith('--allow='));
const allowed = (allowArg ? allowArg.slice('--allow='.length) : 'Component,API,Location')
  .split(',')
  .map(k => k.toLowerCase());

async function verdict(file) {
  const errors = [];
  for (const document of parseAllDocuments(readFileSync(file, 'utf8'))) {
    if (document.errors.length) {
      errors.push(...document.errors.map(e => `YAML: ${e.message}`));
      continue;
    }
    const entity = document.toJSON();
    if (entity === null) continue;
    if (typeof entity !== 'object' || Array.isArray(entity)) {
      errors.push('Expected object at root');
      continue;
    }
    // DefaultCatalogRulesEnforcer: a disallowed kind fails the whole file.
    if (typeof entity.kind === 'string' && !allowed.includes(entity.kind.toLowerCase())) {
      errors.push(`kind ${entity.kind} is not allowed by catalog.rules`);
      continue;
    }
    try {
      const checked = await policy.enforce(entity);
      // BuiltinKindsEntityProcessor: a kind validator that recognizes the
      // entity must accept it; none recognizing it is "unknown kind".
      let recognized = false;
      for (const validator of kinds) {
        if (await validator.check(checked)) recognized = true;
      }
      if (!recognized) errors.push(`No processor recognized kind ${entity.kind}`);
    } catch (error) {
      errors.push(error.message);
    }
  }
  return { valid: errors.length === 0, errors };
}

const out = {};
for (const file of args.filter(a => !a.startsWith('--'))) {
  out[file] = await verdict(file);
}
process.stdout.write(JSON.stringify(out));
