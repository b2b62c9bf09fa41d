// aileron-sdk: write Aileron operators in JavaScript or TypeScript. The public
// surface; each part lives in src/ (see index.d.ts for the documented types).

export { operator } from './src/operator.js';
export { p, ParamsError } from './src/schema.js';
export { Skip, Branch, Reschedule, SkipDownstream, TaskError, Failed, Fatal } from './src/outcome.js';
export { TaskContext, RETURN_VALUE_KEY, XComError, ConnectionError } from './src/context.js';
export { HttpResponse, HttpError } from './src/http.js';
