"""The dashboard pages, one module each; Streamlit runs them as scripts through ``st.navigation``."""
