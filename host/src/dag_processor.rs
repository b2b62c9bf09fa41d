//! Watches the DAGs folder and turns DAG files into parsed DAGs or import errors. (being written)
