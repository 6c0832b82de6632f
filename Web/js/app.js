// Circle's web client: checks that this page may use WebCrypto, loads the client layer, and
// hands the page to the app controller. Everything the page runs ships in this folder.

import { hasSecureCrypto, showHttpsRequired } from './ui/https-required.js';
import { App, showStartupError } from './ui/controller.js';
import { applyTheme } from './ui/prefs.js';

const root = document.getElementById('app');
applyTheme();

if (!hasSecureCrypto()) {
  showHttpsRequired(root);
} else {
  try {
    const { CircleClient } = await import('/js/client/index.js');
    const client = await CircleClient.open();
    new App(root, client).start();
  } catch (error) {
    showStartupError(root, error);
  }
}
