// The build behind `aileron-build`: writes the component's entry (the WIT
// exports glued to the author's operator and the WIT imports), bundles it with
// the author's code and the SDK into one ES module with esbuild, and turns that
// into a component with componentize-js. Both tools are the project's own pinned
// devDependencies, found from the project folder.

import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The WIT interface the entry hands to the operator as its host. */
export const CONTEXT_INTERFACE = 'aileron:operator/context@0.3.0';

/**
 * The entry module: the `describe` and `execute` exports of the `operator` world,
 * delegating to the author's default export with the WIT imports as its host.
 *
 * @param {string} authorImport the author's module, relative to the entry (`../src/index.js`)
 */
export function entrySource(authorImport) {
  return `// Written by aileron-build: the component's exports. Do not edit.
import * as host from '${CONTEXT_INTERFACE}';
import op from ${JSON.stringify(authorImport)};

export const describe = () => op.describe();
export const execute = (info, params) => op.execute(host, info, params);

// Runs while the component is built, so its snapshot starts warm.
op.warmUp?.();
`;
}

/** The folder of package `name` as Node would find it from `from`, or undefined. */
export function findPackage(from, name) {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

function missing(name, project) {
  return new Error(`${name} is not installed for ${project}: run \`npm install\` there (its devDependencies pin it)`);
}

/** componentize-js exports only an `import` condition, which `require.resolve` does not see. */
async function loadComponentize(project) {
  const dir = findPackage(project, '@bytecodealliance/componentize-js');
  if (dir === undefined) throw missing('@bytecodealliance/componentize-js', project);
  const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
  const target = typeof pkg.exports === 'string' ? pkg.exports : (pkg.exports?.['.'] ?? pkg.exports);
  const file = typeof target === 'string' ? target : (target?.import ?? target?.default ?? pkg.main);
  return import(pathToFileURL(join(dir, file)).href);
}

function loadEsbuild(project) {
  try {
    return createRequire(join(project, 'package.json'))('esbuild');
  } catch {
    throw missing('esbuild', project);
  }
}

/** Loads the author's module (bundled alone) in Node: it must default-export an operator. */
async function describeAuthorModule(bundle, entry) {
  const module = await import(pathToFileURL(bundle).href);
  const op = module.default;
  if (typeof op?.describe !== 'function' || typeof op?.execute !== 'function') {
    throw new Error(`${entry} must \`export default operator(...)\` from aileron-sdk`);
  }
  return op.describe();
}

/**
 * Builds the component.
 *
 * @param {object} options
 * @param {string} options.project the operator's folder (its package.json and node_modules)
 * @param {string} options.wit the WIT folder holding the `operator` world
 * @param {string} options.out where to write the component
 * @param {string} [options.entry] the author's module, relative to the project
 * @param {string} [options.world]
 * @param {(line: string) => void} [options.report]
 */
export async function build({ project, wit, out, entry = 'src/index.js', world = 'operator', report = () => {} }) {
  const started = performance.now();
  const projectDir = resolve(project);
  const authorModule = resolve(projectDir, entry);
  const buildDir = join(projectDir, 'build');
  await mkdir(buildDir, { recursive: true });
  const esbuild = loadEsbuild(projectDir);
  const bundleOptions = {
    bundle: true,
    format: 'esm',
    // Neither Node's nor a browser's APIs exist in the component: `neutral`
    // makes an import of `node:fs` a build error rather than a runtime one.
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2022',
    // The WIT imports are resolved by componentize-js, not bundled.
    external: ['aileron:*', 'wasi:*'],
    // Error reasons (`Name: message`) show class names, which bundling may
    // otherwise rename to avoid clashes.
    keepNames: true,
    logLevel: 'warning',
  };

  // First the author's module alone, loaded in Node, so a module that exports
  // no operator (or a TypeScript one) is reported in a second, before the slow step.
  const authorBundle = join(buildDir, 'author.mjs');
  await esbuild.build({ ...bundleOptions, entryPoints: [authorModule], outfile: authorBundle });
  const info = await describeAuthorModule(authorBundle, entry);
  report(`operator ${info.name}@${info.version}`);

  const entryFile = join(buildDir, 'aileron-entry.js');
  const authorImport = relative(buildDir, authorModule).split(sep).join('/');
  await writeFile(entryFile, entrySource(authorImport.startsWith('.') ? authorImport : `./${authorImport}`));
  const bundle = join(buildDir, 'operator.js');
  await esbuild.build({ ...bundleOptions, entryPoints: [entryFile], outfile: bundle });
  report(`bundled ${relative(process.cwd(), bundle)}`);

  const { componentize } = await loadComponentize(projectDir);
  const { component } = await componentize({
    sourcePath: bundle,
    sourceName: 'operator.js',
    witPath: resolve(wit),
    worldName: world,
  });
  const outFile = resolve(out);
  await mkdir(dirname(outFile), { recursive: true });
  await writeFile(outFile, component);
  const { size } = await stat(outFile);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  report(`wrote ${relative(process.cwd(), outFile)} (${(size / 2 ** 20).toFixed(1)} MiB) in ${seconds} s`);
  return { outFile, size, info };
}
