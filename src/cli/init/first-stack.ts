/**
 * The files `capstan init` writes: a stack that validates and applies as it is,
 * on this machine, into a sandbox directory, so that trying it needs no root
 * and touches nothing outside the stack.
 */

export interface StackFile {
  /** Relative to the stack directory, `/`-separated. */
  readonly path: string;
  readonly content: string;
}

export interface FirstStackOptions {
  /** The Host's `root`: an absolute path, where every managed path lands. */
  readonly root: string;
  /** How the README names the sandbox: relative to the stack when it lies inside it. */
  readonly rootShown: string;
}

/** The sandbox `capstan init` gives the Host when no `--root` is given, relative to the stack. */
export const DEFAULT_SANDBOX = '.sandbox';

export function firstStackFiles(options: FirstStackOptions): StackFile[] {
  return [
    { path: 'hosts.yaml', content: hostsYaml(options.root) },
    { path: 'site.yaml', content: SITE_YAML },
    { path: 'templates/index.html.liquid', content: INDEX_TEMPLATE },
    { path: '.gitignore', content: GITIGNORE },
    { path: 'README.md', content: readme(options.rootShown) },
  ];
}

function hostsYaml(root: string): string {
  return `# The machine this stack manages: this one, reached without SSH.
# \`root\` puts every path of the resources below under ${root}, so this
# stack is safe to apply as any user. To manage the machine itself, set \`root: /\`
# (and apply as a user who may write there); for another machine over SSH, see docs/fleet.md.
kind: Host
name: local
spec:
  transport: local
  root: ${JSON.stringify(root)}
  vars:
    # Template variables: templates/index.html.liquid uses this one.
    greeting: Hello from Capstan
`;
}

const SITE_YAML = `# A directory and a file rendered from a template, on the Host \`local\`.
kind: Directory
name: site
target: local
spec:
  path: /srv/site
  mode: "0755"
---
kind: File
name: index
target: local
spec:
  path: /srv/site/index.html        # inside Directory/site: created after it
  template: templates/index.html.liquid
  mode: "0644"
`;

const INDEX_TEMPLATE = `<!doctype html>
<title>{{ greeting }}</title>
<h1>{{ greeting }}</h1>
<p>Rendered by Capstan for the host {{ host.name }}. Edit templates/ or the
host's vars in git, not this file: hand edits are drift.</p>
`;

const GITIGNORE = `# Capstan's state (when no --state is given) and the sandbox this stack applies into.
.capstan/
.sandbox/
`;

function readme(rootShown: string): string {
  return `# A Capstan stack

Made by \`capstan init\`. Capstan reads every \`*.yaml\` file here:

- \`hosts.yaml\`: the Host \`local\` (this machine), with its template variables;
  everything it manages lands under \`${rootShown}\`.
- \`site.yaml\`: a Directory and a File rendered from \`templates/index.html.liquid\`.

Next, in this directory:

\`\`\`sh
capstan validate          # schemas and references: every problem with FILE:LINE:COL
capstan plan              # what would change: 2 to create
capstan apply             # show the plan, ask, apply (--yes: do not ask)
capstan drift             # does the live state still match? 0 in sync, 2 drift
capstan history           # what ran, when, by whom
\`\`\`

Then change \`greeting\` in \`hosts.yaml\` and plan again: the plan shows the
rendered file's diff. Commit the stack to let the controller (\`capstan serve\`)
keep it converged. The whole walk: docs/getting-started.md in Capstan's repository.
`;
}
