// The favorite star of a DAG, on the DAG list and the DAG page: each user's own
// favorites (`POST /dags/{id}/favorite` and `/unfavorite`).

import { post, p } from "./api.js";
import { h, toast } from "./dom.js";

/** The star that marks a DAG as one of the caller's favorites (each user has
 *  their own); `after(isFavorite)` runs once the server has answered. */
export function favoriteStar(d, after) {
  const star = h("button", {
    type: "button", class: "btn btn-icon star", "data-testid": `favorite-${d.dag_id}`,
    "aria-pressed": String(!!d.is_favorite),
    "aria-label": d.is_favorite ? `Remove ${d.dag_id} from your favorites` : `Add ${d.dag_id} to your favorites`,
    title: d.is_favorite ? "A favorite: click to remove" : "Add to your favorites",
    onclick: async () => {
      star.disabled = true;
      const want = !d.is_favorite;
      try {
        await post(p`/dags/${d.dag_id}/${want ? "favorite" : "unfavorite"}`);
        d.is_favorite = want;
      } catch (e) {
        // A 409 means it was not a favorite any more (another tab): so be it.
        if (e.status === 409) d.is_favorite = false;
        else toast(`Could not change your favorites: ${e.detail || e.message}`, "error");
      }
      star.disabled = false;
      after(d.is_favorite);
    },
  }, d.is_favorite ? "★" : "☆");
  return star;
}
