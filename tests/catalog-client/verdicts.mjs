// Backstage's own verdict on catalog files: each file given as an argument
// is read as Backstage's UrlReaderProcessor does (yaml parseAllDocuments),
// and every document goes through catalog-backend's default entity
// policies and the built-in kind validators of @backstage/catalog-model.
// `--allow=Kind,Kind` is `catalog.rules`' allow list; without it, Backstage's
// default rules (Component, API, Location). Prints {"<file>": {"valid":
// bool, "errors": [..]}}; tests/it/validate.rs compares it with
// `bitbucket-catalogd validate`.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import * as model from '@backstage/catalog-model';

const policy = model.EntityPolicies.allOf([
  new model.DefaultNamespaceEntityPolicy(),
  new model.NoForeignRootFieldsEntityPolicy(),
  new model.FieldFormatEntityPolicy(),
  new model.SchemaValidEntityPolicy(),
]);
// Every built-in kind's validator (apiEntityV1alpha1Validator, …).
const kinds = Object.entries(model)
  .filter(([name]) => /^[a-z]+EntityV1alpha1Validator$/.test(name))
  .map(([, validator]) => validator);
if (kinds.length !== 8) throw new Error(`expected 8 kind validators, found ${kinds.length}`);

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
