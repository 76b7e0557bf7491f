// How often a page polls REST while the live socket is unavailable.
export const POLL = 5000;
