// js_fetch: GETs a JSON document from a host in the task's allow_hosts and
// returns the response status with one field of the body.

import { Failed, Fatal, operator, p } from 'aileron-sdk';

export default operator(
  {
    name: 'js_fetch',
    version: '0.1.0',
    description: "GETs a JSON document (its host must be in the task's allow_hosts) and returns its status and one field.",
    params: p.object({
      url: p.string({ description: 'The http or https URL to GET.', pattern: '^https?://' }),
      field: p.string({ description: 'A dotted path into the JSON body, such as `data.name`.', minLength: 1 }),
    }),
  },
  async (ctx, { url, field }) => {
    // A refusal (host not in allow_hosts) or an unreachable server throws an
    // HttpError, which fails the try (retried), its reason in the log.
    const response = await ctx.http(url);
    ctx.info(`GET ${url}: ${response.status}`);
    if (response.status >= 500) throw new Failed(`GET ${url} answered ${response.status}`);
    if (!response.ok) throw new Fatal(`GET ${url} answered ${response.status}`);
    let body;
    try {
      body = response.json();
    } catch (error) {
      throw new Fatal(`GET ${url} did not answer JSON`, { cause: error });
    }
    const value = field.split('.').reduce((node, key) => node?.[key], body);
    if (value === undefined) throw new Fatal(`the body of ${url} has no \`${field}\``);
    return { status: response.status, [field]: value };
  },
);
