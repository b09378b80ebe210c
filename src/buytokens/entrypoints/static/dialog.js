// The purchase dialog: modal over the page, focus kept inside, Esc closes it, and the focus
// goes back to what opened it.

import { $, setError, setStatus } from './render.js';
import { state } from './state.js';

/** @returns {HTMLElement[]} */
function focusable() {
  const selector = 'button, [href], input, select, textarea, [tabindex]:not([tabindex="-1"])';
  return [...$('bt-dialog').querySelectorAll(selector)].filter(
    /** @returns {node is HTMLElement} */
    (node) => node instanceof HTMLElement
      && !(/** @type {{disabled?: boolean}} */ (node)).disabled
      && node.offsetParent !== null && node.getAttribute('aria-hidden') !== 'true',
  );
}

export function openDialog() {
  state.lastFocus = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  $('bt-backdrop').hidden = false;
  $('bt-page').setAttribute('aria-hidden', 'true');
  $('bt-page').inert = true;
  setStatus('');
  setError('');
  const checked = $('bt-packages').querySelector('input:checked');
  (checked instanceof HTMLElement ? checked : $('bt-dialog')).focus();
}

export function closeDialog() {
  if ($('bt-backdrop').hidden) return;
  $('bt-backdrop').hidden = true;
  $('bt-page').removeAttribute('aria-hidden');
  $('bt-page').inert = false;
  const back = state.lastFocus && document.contains(state.lastFocus) ? state.lastFocus : $('bt-open');
  back.focus();
}

export function dialogIsOpen() {
  return !$('bt-backdrop').hidden;
}

/** @param {KeyboardEvent} event */
export function onDialogKeydown(event) {
  if ($('bt-backdrop').hidden) return;
  // Leave keys alone in overlays of others, such as Stripe.js's 3-D Secure prompt.
  const target = event.target instanceof Node ? event.target : null;
  if (target !== document.body && !$('bt-backdrop').contains(target)) return;
  if (event.key === 'Escape') {
    event.preventDefault();
    closeDialog();
    return;
  }
  if (event.key !== 'Tab') return;
  const nodes = focusable();
  if (nodes.length === 0) return;
  const first = nodes[0];
  const last = nodes[nodes.length - 1];
  const active = document.activeElement;
  const inside = $('bt-dialog').contains(active);
  if (event.shiftKey && (active === first || !inside || active === $('bt-dialog'))) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (active === last || !inside)) {
    event.preventDefault();
    first.focus();
  }
}
